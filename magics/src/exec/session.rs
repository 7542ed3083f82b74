//! The kernel's Rust session as the in-kernel executor sees it (the
//! [`Session`] trait `kernel/` implements on top of evcxr), and the code
//! the executor evaluates in it.

use std::future::Future;

use crate::events::Emit;

/// An error evaluating code in the session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionError {
    /// One line: "Panic: index out of bounds".
    pub message: String,
    /// The full traceback, for the asset's error.
    pub detail: Vec<String>,
}

/// The kernel's Rust session as executors see it (`kernel/` implements it on
/// top of evcxr; tests can implement it on anything that evaluates code).
pub trait Session {
    /// Evaluates `code`; output is reported as events of `asset`. Returns the
    /// final value's text, if the code ends in an expression.
    fn run(
        &mut self,
        code: &str,
        asset: &str,
        emit: &dyn Emit,
    ) -> impl Future<Output = Result<Option<String>, SessionError>>;
    /// The session's variables and their types.
    fn variables(&mut self) -> impl Future<Output = Vec<(String, String)>>;
    /// Changes whenever the session lost its state (evcxr restarted).
    fn epoch(&self) -> u64;
    /// The process the code runs in, for measuring what an asset used.
    fn process_id(&self) -> Option<u32> {
        None
    }
}

/// Where the in-kernel executor gets its session: the kernel has one; the
/// CLI starts evcxr only when something runs in it.
pub trait Sessions {
    type Session: Session;
    /// The session, started if need be.
    fn session(&mut self) -> &mut Self::Session;
    /// The session, if it is running already.
    fn existing(&mut self) -> Option<&mut Self::Session>;
}

/// The code binding asset `name` in the session.
pub fn asset_code(name: &str, type_annotation: Option<&str>, body: &str) -> String {
    match type_annotation {
        Some(ty) => format!("let {name}: {ty} = {{\n{body}\n}};"),
        None => format!("let {name} = {{\n{body}\n}};"),
    }
}

/// The code evaluating a check body (bool or Result) to `None` (passed) or
/// `Some(message)`.
pub fn check_code(body: &str) -> String {
    format!(
        "{{\n\
         trait SlurmbookCheck {{ fn slurmbook_outcome(&self) -> Option<String>; }}\n\
         impl SlurmbookCheck for bool {{ fn slurmbook_outcome(&self) -> Option<String> {{ if *self {{ None }} else {{ Some(\"returned false\".to_string()) }} }} }}\n\
         impl<T, E: std::fmt::Debug> SlurmbookCheck for Result<T, E> {{ fn slurmbook_outcome(&self) -> Option<String> {{ self.as_ref().err().map(|e| format!(\"{{e:?}}\")) }} }}\n\
         let slurmbook_check_value = {{\n{body}\n}};\n\
         SlurmbookCheck::slurmbook_outcome(&slurmbook_check_value)\n\
         }}"
    )
}

/// Code that serializes `name` to `staging` (the kernel then stores it).
pub fn store_code(name: &str, staging: &std::path::Path) -> String {
    format!(
        "std::fs::write({path:?}, serde_json::to_vec(&{name}).expect(\"serializing {name}\")).expect(\"writing {name}\");",
        path = staging.display().to_string()
    )
}

/// Code that binds `name` from a stored JSON value.
pub fn load_code(name: &str, type_name: &str, path: &std::path::Path) -> String {
    format!(
        "let {name}: {type_name} = serde_json::from_slice(&std::fs::read({path:?}).expect(\"reading the stored value of {name}\")).expect(\"decoding the stored value of {name}\");",
        path = path.display().to_string()
    )
}
