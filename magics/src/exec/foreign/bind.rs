//! Python and bash values in the kernel's Rust session: bound, as the Rust
//! types their assets state, when Rust code (a consumer, a check, the
//! cell that ran the asset) needs them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::events::Event;
use crate::exec::session::{Session, SessionError};
use crate::model::Target;
use crate::project::Project;
use crate::state::StateDb;

/// What the session has of Python and bash values during a run.
#[derive(Debug, Default)]
pub struct ForeignValues {
    /// Values of this run not bound yet: asset -> its JSON file.
    pending: HashMap<String, PathBuf>,
    /// Names the session has (bound before or during the run).
    bound: HashSet<String>,
    /// Names the session had before their asset ran again in this run.
    stale: HashSet<String>,
}

impl ForeignValues {
    /// `in_session`: the session's variables when the run starts.
    pub fn new(in_session: &HashSet<String>) -> ForeignValues {
        ForeignValues {
            pending: HashMap::new(),
            bound: in_session.clone(),
            stale: HashSet::new(),
        }
    }

    /// `asset` ran in this run and its value is `file`.
    pub fn ran(&mut self, asset: &str, file: PathBuf) {
        if self.bound.remove(asset) {
            self.stale.insert(asset.to_owned());
        }
        self.pending.insert(asset.to_owned(), file);
    }

    /// At the end of a run: binds the values of this run whose names the
    /// session had with an older value; returns the errors.
    pub async fn refresh<S: Session>(
        mut self,
        project: &Project,
        db: &StateDb,
        session: &mut S,
    ) -> Vec<(String, SessionError)> {
        let mut stale: Vec<String> = self.stale.iter().cloned().collect();
        stale.sort();
        let mut errors = Vec::new();
        for asset in stale {
            if let Err(e) =
                bind_foreign(project, db, session, &asset, Some("the session"), &mut self).await
            {
                errors.push((asset, e));
            }
        }
        errors
    }
}

/// Binds the values of the Python and bash upstreams of the Rust asset
/// `name` that the session does not have yet, as the types they state.
pub async fn bind_foreign_upstreams<S: Session>(
    project: &Project,
    db: &StateDb,
    session: &mut S,
    name: &str,
    values: &mut ForeignValues,
) -> Result<(), SessionError> {
    for (up, kind) in project.graph.dependencies(name) {
        if kind.carries_data() {
            bind_foreign(project, db, session, up, Some(name), values).await?;
        }
    }
    Ok(())
}

/// Binds a Python or bash asset's value in the session as the type it
/// states (nothing for a Rust asset, or one bound already): this run's
/// value, else its newest value stored here. The error names `consumer`,
/// the asset and the type.
pub async fn bind_foreign<S: Session>(
    project: &Project,
    db: &StateDb,
    session: &mut S,
    asset: &str,
    consumer: Option<&str>,
    values: &mut ForeignValues,
) -> Result<(), SessionError> {
    let Some(spec) = project.asset(asset).filter(|s| s.lang().is_foreign()) else {
        return Ok(());
    };
    if values.bound.contains(asset) {
        return Ok(());
    }
    let consumer = consumer.unwrap_or("its checks");
    let file = match values.pending.get(asset) {
        Some(file) => file.clone(),
        None => stored_value(db, asset, consumer)?,
    };
    let ty = spec.declared_type().unwrap_or_default();
    if let Err(e) = session
        .run(&bind_code(asset, &ty, &file), asset, &|_: Event| {})
        .await
    {
        let message = super::decode_error(asset, spec.lang().as_str(), &ty, consumer, &e.message);
        return Err(SessionError {
            detail: vec![message.clone()],
            message,
        });
    }
    values.pending.remove(asset);
    values.stale.remove(asset);
    values.bound.insert(asset.to_owned());
    Ok(())
}

/// Binds a Python or bash asset's newest stored value in the session (a
/// cell that ran it shows its value like a Rust cell).
pub async fn bind_stored<S: Session>(
    project: &Project,
    db: &StateDb,
    session: &mut S,
    asset: &str,
) -> Result<(), SessionError> {
    bind_foreign(
        project,
        db,
        session,
        asset,
        Some("the session"),
        &mut ForeignValues::default(),
    )
    .await
}

/// The JSON file of `asset`'s newest successful materialization here.
fn stored_value(db: &StateDb, asset: &str, consumer: &str) -> Result<PathBuf, SessionError> {
    let error = |message: String| SessionError {
        detail: vec![message.clone()],
        message,
    };
    let last = db
        .last_success(asset)
        .map_err(|e| error(e.to_string()))?
        .ok_or_else(|| {
            error(format!(
                "`{consumer}` needs `{asset}`, which has no value yet: run `%materialize +{consumer}`"
            ))
        })?;
    match last.value_path.as_deref().map(Path::new) {
        Some(p) if last.target == Target::Local && p.is_file() => Ok(p.to_path_buf()),
        Some(p) if last.target == Target::Slurm => Err(error(format!(
            "`{asset}`'s value is on the cluster ({}): `%load {asset}` brings it into the session",
            p.display()
        ))),
        _ => Err(error(format!(
            "`{asset}`'s stored value is missing: materialize it again"
        ))),
    }
}

/// The code binding `asset: ty` from the JSON file `path`.
fn bind_code(asset: &str, ty: &str, path: &Path) -> String {
    format!(
        "let {asset}: {ty} = match serde_json::from_slice::<{ty}>(&std::fs::read({path:?}).expect(\"reading the value of {asset}\")) {{ Ok(v) => v, Err(e) => panic!(\"{{e}}\") }};",
        path = path.display().to_string()
    )
}
