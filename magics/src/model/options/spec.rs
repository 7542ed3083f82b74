//! How options and configuration keys are declared: once, as a field of a
//! struct given to [`declare_options!`], with the option's name, value form,
//! help and value parser. From that one declaration come the struct, its
//! `Default`, the [`OptionInfo`] table (read by the magics' parsers, `%help`,
//! `%lsmagic`, completion, error messages and the `%config` documentation)
//! and [`Options::apply`], which parses a value into its field.
//!
//! A field is declared as one of:
//! - `pub f: Option<T> = option("name", "VALUE", "help", parser)`, where
//!   `parser: fn(&str) -> Result<T, String>` returns the value or the
//!   expected form; `Vec<String>` and `BTreeMap<String, String>` fields
//!   accumulate (the option may be repeated). `option(..., sbatch "NAME")`
//!   (optionally followed by a value prefix literal) marks an `sbatch`
//!   option;
//! - `pub f: bool = flag("name", "help")`: given bare, or `=true`/`=false`;
//! - `pub f: Option<bool> = toggle("name", "help", sbatch "NAME")`: `--name`
//!   or `--no-name` (`None`: neither; the `sbatch` option is rendered the
//!   same way), `name = true|false` as a configuration key;
//! - `pub f: T = value("name", "VALUE", "help", parser, default "TEXT")`: a
//!   value that always has one; the default is declared as text and parsed
//!   by the same parser;
//! - `pub f: T` with no `= ...`: a plain field that is not an option.
//!
//! This is a declarative macro rather than clap's derive because the errors
//! must name the column of the option in the cell's line, and clap's errors
//! know nothing of columns (nor of `%%asset`'s `NAME: TYPE` prefix).

use std::collections::BTreeMap;

/// The `sbatch` long option an `%%asset` option sets, and what goes before
/// the value (`--gpus=a100:2` becomes `--gres=gpu:a100:2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sbatch {
    pub name: &'static str,
    pub prefix: &'static str,
}

/// One declared option or configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionInfo {
    pub name: &'static str,
    /// The value's form as help shows it (`NAME`, `local|slurm`); `None` for a flag.
    pub value: Option<&'static str>,
    pub help: &'static str,
    /// The default as text, for a value that always has one.
    pub default: Option<&'static str>,
    /// Given again, the values accumulate (otherwise that is an error).
    pub repeatable: bool,
    /// The `sbatch` option it sets, if any.
    pub sbatch: Option<Sbatch>,
    /// A toggle: `--no-NAME` sets it to false.
    pub negatable: bool,
}

impl OptionInfo {
    /// `--name VALUE`, or `--name` for a flag.
    pub fn usage(&self) -> String {
        match self.value {
            Some(v) => format!("--{} {v}", self.name),
            None if self.negatable => format!("--{0}|--no-{0}", self.name),
            None => format!("--{}", self.name),
        }
    }

    /// The value's fixed choices (`local|slurm` gives `local`, `slurm`);
    /// empty when the value is free-form (a placeholder such as `NAME`).
    pub fn choices(&self) -> Vec<&'static str> {
        let Some(value) = self.value else {
            return Vec::new();
        };
        let choices: Vec<&str> = value.split('|').collect();
        let fixed =
            |c: &&str| !c.is_empty() && c.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        if choices.iter().all(fixed) {
            choices
        } else {
            Vec::new()
        }
    }
}

/// A struct of declared options (implemented by [`declare_options!`]).
pub trait Options: Default + 'static {
    /// Every option, in declaration order.
    const OPTIONS: &'static [OptionInfo];

    /// Parses `value` (`None`: given bare) into the field of option `name`;
    /// `Err` says what form was expected.
    fn apply(&mut self, name: &str, value: Option<&str>) -> Result<(), String>;

    /// The value of option `name` as its `sbatch` option takes it (with the
    /// prefix), when the option maps to one and is set.
    fn sbatch_value(&self, name: &str) -> Option<String>;

    /// The declaration of option `name`.
    fn info(name: &str) -> Option<&'static OptionInfo> {
        Self::OPTIONS.iter().find(|o| o.name == name)
    }
}

/// How a valued option's field takes a parsed value.
pub trait Slot {
    type Value;
    /// Whether the option may be given more than once.
    const REPEATABLE: bool;
    fn put(&mut self, value: Self::Value);
}

impl<T> Slot for Option<T> {
    type Value = T;
    const REPEATABLE: bool = false;
    fn put(&mut self, value: T) {
        *self = Some(value);
    }
}

/// A list (`--deps a,b --deps c`): new items are appended once each.
impl Slot for Vec<String> {
    type Value = Vec<String>;
    const REPEATABLE: bool = true;
    fn put(&mut self, value: Vec<String>) {
        for item in value {
            if !self.contains(&item) {
                self.push(item);
            }
        }
    }
}

/// Key-value pairs (`--tags a=1,b=2 --tags c=3`).
impl Slot for BTreeMap<String, String> {
    type Value = Vec<(String, String)>;
    const REPEATABLE: bool = true;
    fn put(&mut self, value: Vec<(String, String)>) {
        self.extend(value);
    }
}

/// A flag's value: bare (`--force`), `=true` or `=false`.
pub fn flag(value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err("no value (or `true`/`false`)".to_string()),
    }
}

/// A valued option given without its value (the magics' parsers report
/// that themselves; this is for other callers of [`Options::apply`]).
pub fn missing(form: &str) -> String {
    format!("a value: {form}")
}

/// Declares a struct of options; see the module documentation.
macro_rules! declare_options {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $fty:ty $(= $kind:ident ( $($spec:tt)* ))?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $fty, )*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self {
                    $( $field: $crate::model::options::spec::option_default!(
                        $fty; $($kind($($spec)*))?
                    ), )*
                }
            }
        }

        impl $crate::model::options::spec::Options for $name {
            const OPTIONS: &'static [$crate::model::options::spec::OptionInfo] = &[
                $( $( $crate::model::options::spec::option_info!($fty; $kind($($spec)*)), )? )*
            ];

            fn apply(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
                $( $(
                    $crate::model::options::spec::option_apply!(
                        self.$field, name, value; $kind($($spec)*)
                    );
                )? )*
                Err(format!("no option `{name}`"))
            }

            // `name` is unused when no option maps to an sbatch option.
            #[allow(unused_variables)]
            fn sbatch_value(&self, name: &str) -> Option<String> {
                $( $(
                    $crate::model::options::spec::option_sbatch!(
                        self.$field, name; $kind($($spec)*)
                    );
                )? )*
                None
            }
        }
    };
}

/// The `Default` of one declared field.
macro_rules! option_default {
    ($fty:ty; ) => {
        <$fty as ::core::default::Default>::default()
    };
    ($fty:ty; value($name:literal, $form:literal, $help:literal, $parse:expr, default $default:literal $(,)?)) => {
        match ($parse)($default) {
            Ok(v) => v,
            Err(e) => panic!(
                "the declared default `{}` of `{}` does not parse: {e}",
                $default, $name
            ),
        }
    };
    ($fty:ty; $kind:ident($($spec:tt)*)) => {
        <$fty as ::core::default::Default>::default()
    };
}

/// The [`OptionInfo`] of one declared field.
macro_rules! option_info {
    (@sbatch) => { None };
    (@sbatch $sbatch:literal $($prefix:literal)?) => {
        Some($crate::model::options::spec::Sbatch {
            name: $sbatch,
            prefix: concat!("" $(, $prefix)?),
        })
    };
    ($fty:ty; option($name:literal, $form:literal, $help:literal, $parse:expr
        $(, sbatch $sbatch:literal $($prefix:literal)?)? $(,)?)) => {
        $crate::model::options::spec::OptionInfo {
            name: $name,
            value: Some($form),
            help: $help,
            default: None,
            repeatable: <$fty as $crate::model::options::spec::Slot>::REPEATABLE,
            sbatch: $crate::model::options::spec::option_info!(@sbatch $($sbatch $($prefix)?)?),
            negatable: false,
        }
    };
    ($fty:ty; toggle($name:literal, $help:literal $(, sbatch $sbatch:literal)? $(,)?)) => {
        $crate::model::options::spec::OptionInfo {
            name: $name,
            value: None,
            help: $help,
            default: None,
            repeatable: false,
            sbatch: $crate::model::options::spec::option_info!(@sbatch $($sbatch)?),
            negatable: true,
        }
    };
    ($fty:ty; flag($name:literal, $help:literal $(,)?)) => {
        $crate::model::options::spec::OptionInfo {
            name: $name,
            value: None,
            help: $help,
            default: None,
            repeatable: false,
            sbatch: None,
            negatable: false,
        }
    };
    ($fty:ty; value($name:literal, $form:literal, $help:literal, $parse:expr, default $default:literal $(,)?)) => {
        $crate::model::options::spec::OptionInfo {
            name: $name,
            value: Some($form),
            help: $help,
            default: Some($default),
            repeatable: false,
            sbatch: None,
            negatable: false,
        }
    };
}

/// One declared field's arm of [`Options::apply`].
macro_rules! option_apply {
    ($slot:expr, $name:ident, $value:ident; option($oname:literal, $form:literal, $help:literal, $parse:expr $(, $($rest:tt)*)?)) => {
        if $name == $oname {
            let text = $value.ok_or_else(|| $crate::model::options::spec::missing($form))?;
            $crate::model::options::spec::Slot::put(&mut $slot, ($parse)(text)?);
            return Ok(());
        }
    };
    ($slot:expr, $name:ident, $value:ident; flag($oname:literal, $help:literal $(,)?)) => {
        if $name == $oname {
            $slot = $crate::model::options::spec::flag($value)?;
            return Ok(());
        }
    };
    ($slot:expr, $name:ident, $value:ident; toggle($oname:literal, $help:literal $(, $($rest:tt)*)?)) => {
        if $name == $oname {
            $slot = Some($crate::model::options::spec::flag($value)?);
            return Ok(());
        }
    };
    ($slot:expr, $name:ident, $value:ident; value($oname:literal, $form:literal, $help:literal, $parse:expr, default $default:literal $(,)?)) => {
        if $name == $oname {
            let text = $value.ok_or_else(|| $crate::model::options::spec::missing($form))?;
            $slot = ($parse)(text)?;
            return Ok(());
        }
    };
}

/// One declared field's arm of [`Options::sbatch_value`] (only `sbatch` options have one).
macro_rules! option_sbatch {
    ($slot:expr, $name:ident; option($oname:literal, $form:literal, $help:literal, $parse:expr, sbatch $sbatch:literal $($prefix:literal)? $(,)?)) => {
        if $name == $oname {
            return $slot.as_ref().map(|v| format!("{}{v}", concat!("" $(, $prefix)?)));
        }
    };
    ($slot:expr, $name:ident; toggle($oname:literal, $help:literal, sbatch $sbatch:literal $(,)?)) => {
        if $name == $oname {
            return $slot.map(|v: bool| v.to_string());
        }
    };
    ($slot:expr, $name:ident; $kind:ident($($spec:tt)*)) => {};
}

pub(crate) use {declare_options, option_apply, option_default, option_info, option_sbatch};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AssetOptions;

    #[test]
    fn declarations_give_usage_choices_and_repeatability() {
        let info = |name| AssetOptions::info(name).unwrap();
        assert_eq!(info("target").choices(), ["local", "slurm"]);
        assert!(info("gpus").choices().is_empty());
        assert!(info("own-job").choices().is_empty());
        assert_eq!(info("own-job").usage(), "--own-job");
        assert_eq!(info("mem").usage(), "--mem SIZE");
        let repeatable: Vec<&str> = AssetOptions::OPTIONS
            .iter()
            .filter(|o| o.repeatable)
            .map(|o| o.name)
            .collect();
        assert_eq!(repeatable, ["tags", "deps"]);
        assert_eq!(
            info("gpus").sbatch,
            Some(Sbatch {
                name: "gres",
                prefix: "gpu:"
            })
        );
        let mut o = AssetOptions::default();
        assert_eq!(o.apply("cpus", None), Err("a value: N".to_string()));
        assert!(o.apply("colour", Some("red")).is_err());
        o.apply("own-job", Some("false")).unwrap();
        assert!(!o.own_job);
    }
}
