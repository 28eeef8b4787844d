"""features per model version, canonical face crop

Revision ID: 0003
Revises: 0002

* ``face_features`` (face, model version) -> vector: every ``faces.feature`` moves there under
  the face's own ``face_model_version``.
* ``faces.aligned_crop`` becomes ``faces.crop_image`` and ``faces.crop_landmarks`` (the face's
  5 landmarks in the crop's pixels) is added. Faces stored before this revision only have the
  tight 112x112 SFace crop, so that stays their crop, with the landmarks at SFace's template
  positions: that is exactly where the alignment put them. They have less margin than the
  320x320 canonical crop of new faces (openiai.vision.canonical): a recognizer re-extracting
  from them gets black borders where its window runs past the 112 px.

Works on SQLite (batch mode: ``faces`` is rebuilt once) and PostgreSQL. The foreign key from
``face_features`` to ``faces`` is added last: on SQLite, rebuilding ``faces`` drops the old
table, and with foreign keys on (the server's connections always have them) that would delete
every row of a child table through ON DELETE CASCADE.

Downgrade puts each face's vector under its own version back into ``faces.feature`` (vectors
under other versions are lost) and re-cuts the 112x112 SFace crop from the canonical crop.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# SFace's 112x112 template (openiai.vision.align.TEMPLATE), frozen here: a migration must keep
# meaning what it meant when it was written, whatever the code does later.
SFACE_TEMPLATE = [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                  [41.5493, 92.3655], [70.7299, 92.2041]]
SFACE_SIZE = 112

faces = sa.table(
    'faces',
    sa.column('pk', sa.Integer()),
    sa.column('face_model_version', sa.String()),
    sa.column('feature', sa.LargeBinary()),
    sa.column('aligned_crop', sa.LargeBinary()),
    sa.column('crop_image', sa.LargeBinary()),
    sa.column('crop_landmarks', sa.JSON()),
)


def upgrade() -> None:
    op.create_table(
        'face_features',
        sa.Column('face_pk', sa.Integer(), nullable=False),
        sa.Column('model_version', sa.String(length=8), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.Column('created_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('face_pk', 'model_version'),
    )
    op.execute('INSERT INTO face_features (face_pk, model_version, vector, created_ms) '
               'SELECT pk, face_model_version, feature, created_ms FROM faces')

    with op.batch_alter_table('faces') as batch:  # SQLite: a plain ADD COLUMN
        batch.add_column(sa.Column('crop_landmarks', sa.JSON(), nullable=True))
    op.execute(faces.update().values(crop_landmarks=SFACE_TEMPLATE))
    with op.batch_alter_table('faces') as batch:  # SQLite: the one rebuild of the table
        batch.alter_column('aligned_crop', new_column_name='crop_image',
                           existing_type=sa.LargeBinary(), existing_nullable=False)
        batch.alter_column('crop_landmarks', existing_type=sa.JSON(), nullable=False)
        batch.drop_column('feature')

    with op.batch_alter_table('face_features') as batch:
        batch.create_foreign_key('fk_face_features_face_pk', 'faces', ['face_pk'], ['pk'],
                                 ondelete='CASCADE')


def downgrade() -> None:
    bind = op.get_bind()
    missing = bind.execute(sa.text(
        'SELECT count(*) FROM faces WHERE NOT EXISTS (SELECT 1 FROM face_features f '
        'WHERE f.face_pk = faces.pk AND f.model_version = faces.face_model_version)')).scalar()
    if missing:
        raise RuntimeError(f'{missing} faces have no vector under their own FaceModelVersion; '
                           'revision 0002 cannot hold them')
    with op.batch_alter_table('faces') as batch:
        batch.add_column(sa.Column('feature', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('aligned_crop', sa.LargeBinary(), nullable=True))
    op.execute('UPDATE faces SET feature = (SELECT f.vector FROM face_features f '
               'WHERE f.face_pk = faces.pk AND f.model_version = faces.face_model_version)')
    _recut_sface_crops(bind)
    op.drop_table('face_features')  # before faces is rebuilt (see the module docstring)
    with op.batch_alter_table('faces') as batch:
        batch.alter_column('feature', existing_type=sa.LargeBinary(), nullable=False)
        batch.alter_column('aligned_crop', existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column('crop_image')
        batch.drop_column('crop_landmarks')


def _recut_sface_crops(bind, chunk: int = 500) -> None:
    """aligned_crop = PNG of the 112x112 SFace crop, re-cut from each face's crop_image."""
    last = None
    while True:
        query = sa.select(faces.c.pk, faces.c.crop_image, faces.c.crop_landmarks)
        if last is not None:
            query = query.where(faces.c.pk > last)
        rows = bind.execute(query.order_by(faces.c.pk).limit(chunk)).all()
        if not rows:
            return
        bind.execute(faces.update().where(faces.c.pk == sa.bindparam('face_pk'))
                     .values(aligned_crop=sa.bindparam('png')),
                     [{'face_pk': pk, 'png': _sface_png(image, landmarks)}
                      for pk, image, landmarks in rows])
        last = rows[-1][0]


def _sface_png(image: bytes, landmarks) -> bytes:
    import cv2
    import numpy as np

    crop = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if crop.shape[:2] == (SFACE_SIZE, SFACE_SIZE):  # stored before 0003: already the SFace crop
        return bytes(image) if bytes(image[:8]) == b'\x89PNG\r\n\x1a\n' else _png(crop)
    # Least-squares similarity x' = a x - b y + tx, y' = b x + a y + ty onto the template.
    src = np.asarray(landmarks, np.float64).reshape(5, 2)
    dst = np.asarray(SFACE_TEMPLATE, np.float64)
    rows = np.zeros((10, 4))
    rows[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(5), np.zeros(5)]
    rows[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(5), np.ones(5)]
    a, b, tx, ty = np.linalg.lstsq(rows, dst.reshape(-1), rcond=None)[0]
    m = np.array([[a, -b, tx], [b, a, ty]])
    return _png(cv2.warpAffine(crop, m, (SFACE_SIZE, SFACE_SIZE), flags=cv2.INTER_LINEAR))


def _png(pixels) -> bytes:
    import cv2

    return cv2.imencode('.png', pixels)[1].tobytes()
