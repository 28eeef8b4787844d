"""FaceModelVersion 2.0 is dlib's ResNet: SFace vectors stored as 2.0 step aside

Revision ID: 0004
Revises: 0003

Until this revision both versions were embedded by SFace. 2.0 now has its own recognizer, so
a vector stored under "2.0" before it is an SFace vector that 2.0's searches cannot compare
with: it moves to the model version ``2.0sface`` (kept, not deleted, so a downgrade gives the
very bytes back). The faces then have no vector under their own version; on start-up the
server re-extracts it from each face's stored crop with dlib's ResNet
(:mod:`openiai.services.reextract`), recording ordinary index changes: they come after every
older entry of the log, so an index rebuilt from the tables, or a snapshot plus the log, ends
with dlib vectors only (the log keeps its older entries: a removal after the last snapshot
must still be replayed).

Downgrade drops the dlib vectors and puts the SFace ones back under "2.0".
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

LEGACY = '2.0sface'  # face_features.model_version is String(8)


def upgrade() -> None:
    op.execute(f"UPDATE face_features SET model_version = '{LEGACY}' WHERE model_version = '2.0'")


def downgrade() -> None:
    op.execute("DELETE FROM face_features WHERE model_version = '2.0' AND EXISTS "
               "(SELECT 1 FROM face_features l WHERE l.face_pk = face_features.face_pk "
               f"AND l.model_version = '{LEGACY}')")
    op.execute(f"UPDATE face_features SET model_version = '2.0' WHERE model_version = '{LEGACY}'")
