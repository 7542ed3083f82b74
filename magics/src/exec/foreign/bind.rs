//! Python and bash values in the kernel's Rust session: bound, as the Rust
//! types their assets state, when Rust code (a consumer, a check) needs them.

use std::collections::HashMap;

use crate::events::Event;
use crate::exec::session::{Session, SessionError};
use crate::project::Project;

/// Binds the values of the Python and bash upstreams of the Rust asset
/// `name` that ran in this run, as the types they state.
pub async fn bind_foreign_upstreams<S: Session>(
    project: &Project,
    session: &mut S,
    name: &str,
    pending: &mut HashMap<String, std::path::PathBuf>,
) -> Result<(), SessionError> {
    for (up, kind) in project.graph.dependencies(name) {
        if kind.carries_data() {
            bind_foreign(project, session, up, Some(name), pending).await?;
        }
    }
    Ok(())
}

/// Binds a Python or bash asset's value of this run in the session as the
/// type it states (nothing when it is bound already or did not run: a
/// fresh one is loaded like any fresh asset); the error names `consumer`,
/// the asset and the type.
pub async fn bind_foreign<S: Session>(
    project: &Project,
    session: &mut S,
    asset: &str,
    consumer: Option<&str>,
    pending: &mut HashMap<String, std::path::PathBuf>,
) -> Result<(), SessionError> {
    let (Some(spec), Some(file)) = (project.asset(asset), pending.get(asset)) else {
        return Ok(());
    };
    let ty = spec.declared_type().unwrap_or_default();
    let code = format!(
        "let {asset}: {ty} = match serde_json::from_slice::<{ty}>(&std::fs::read({path:?}).expect(\"reading the value of {asset}\")) {{ Ok(v) => v, Err(e) => panic!(\"{{e}}\") }};",
        path = file.display().to_string()
    );
    let quiet = |_: Event| {};
    if let Err(e) = session.run(&code, asset, &quiet).await {
        let message = super::decode_error(
            asset,
            spec.lang().as_str(),
            &ty,
            consumer.unwrap_or("its checks"),
            &e.message,
        );
        return Err(SessionError {
            detail: vec![message.clone()],
            message,
        });
    }
    pending.remove(asset);
    Ok(())
}
