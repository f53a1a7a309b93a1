//! Errors of the sync engine, and how each should be treated by the job queue.

use crate::crm::{CrmError, ErrorClass};
use crate::store::StoreError;

/// Why a sync job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// RetailCRM refused or failed; the inner error says what to do.
    #[error(transparent)]
    Crm(#[from] CrmError),
    /// Postgres failed; nothing of the failed batch was committed.
    #[error(transparent)]
    Store(StoreError),
    /// Another sync of the same project moved the cursor first; this run stopped without
    /// writing and will be retried. Two syncs of one project should not run at once.
    #[error(
        "another sync of project {project_id} moved the {stream} cursor while this one ran; \
         nothing was written by this batch, the job will be retried"
    )]
    Conflict {
        project_id: i64,
        stream: crate::model::Stream,
    },
    /// A snapshot window that needed pages never read completely: the list kept changing
    /// under it (or its order is unstable). Retried; the snapshot resumes at that window.
    #[error(
        "the {stream} list of project {project_id} kept changing while a snapshot window was \
         read ({rounds} full reads disagreed with its count); the job will be retried and resumes \
         at that window"
    )]
    ListUnstable {
        project_id: i64,
        stream: crate::model::Stream,
        rounds: u32,
    },
    /// The integration is switched off (`is_active = false`).
    #[error(
        "the integration of project {0} is inactive; set is_active = true \
         (`retailcrm-sync integration set --project-id {0} --active true`) to sync it"
    )]
    Inactive(i64),
}

impl SyncError {
    /// True when the job failed only because Postgres could not be reached.
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, SyncError::Store(e) if e.is_unavailable())
    }

    /// How the queue should treat this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            SyncError::Crm(e) => e.class(),
            SyncError::Store(_) | SyncError::Conflict { .. } | SyncError::ListUnstable { .. } => {
                ErrorClass::Transient
            }
            SyncError::Inactive(_) => ErrorClass::Permanent,
        }
    }
}
