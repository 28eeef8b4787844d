"""background jobs

Revision ID: 0005
Revises: 0004

One row per background job (:mod:`openiai.services.jobs`): an upgrade of a group's
FaceModelVersion, a re-extraction of missing vectors, a duplicate-person check. The runner
saves ``checkpoint`` and ``progress`` after every batch, in the same transaction as the batch's
own writes, so a job resumes from its last batch after a crash. ``lease_owner`` /
``lease_expires_ms`` make sure one runner at a time works on a job across processes.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'jobs',
        sa.Column('pk', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('job_id', sa.String(length=96), nullable=False),
        sa.Column('account_id', sa.Integer(),
                  sa.ForeignKey('accounts.id', ondelete='CASCADE', name='fk_jobs_account'),
                  nullable=True),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('progress', sa.Float(), nullable=False),
        sa.Column('checkpoint', sa.JSON(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('lease_owner', sa.String(length=128), nullable=True),
        sa.Column('lease_expires_ms', sa.BigInteger(), nullable=False),
        sa.Column('created_ms', sa.BigInteger(), nullable=False),
        sa.Column('started_ms', sa.BigInteger(), nullable=False),
        sa.Column('updated_ms', sa.BigInteger(), nullable=False),
        sa.Column('finished_ms', sa.BigInteger(), nullable=False),
        sa.UniqueConstraint('job_id', name='uq_jobs_job_id'),
    )
    op.create_index('ix_jobs_account_kind', 'jobs', ['account_id', 'kind', 'created_ms'])
    op.create_index('ix_jobs_status', 'jobs', ['status'])


def downgrade() -> None:
    op.drop_index('ix_jobs_status', table_name='jobs')
    op.drop_index('ix_jobs_account_kind', table_name='jobs')
    op.drop_table('jobs')
