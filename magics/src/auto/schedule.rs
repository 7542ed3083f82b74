//! The texts of a schedule on the cluster (`slurmbook schedule install`):
//! the cadence as a cron line, the `tick.sh` wrapper, the scrontab block
//! (merged into the user's own scrontab, which is kept) and the fallback
//! job that resubmits itself with `--begin` where scrontab is disabled.
//! Every word put into a script or a scrontab line is a validated path or
//! a quoted word; nothing here runs anything.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::transport::{check_abs_path, quote};

/// How often the cluster ticks (`--every 15m`): whole minutes that divide
/// an hour, whole hours that divide a day, or `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    pub minutes: u32,
}

impl FromStr for Every {
    type Err = String;
    fn from_str(s: &str) -> Result<Every, String> {
        let bad = || {
            format!("`{s}`: an interval of 1-59 minutes dividing an hour (1m, 5m, 15m, 30m), hours dividing a day (1h, 2h, 6h, 12h), or 1d")
        };
        let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
        let n: u32 = n.parse().map_err(|_| bad())?;
        let minutes = match unit {
            "m" | "min" if n >= 1 && 60 % n == 0 && n < 60 => n,
            "h" if n >= 1 && 24 % n == 0 && n < 24 => n * 60,
            "d" if n == 1 => 24 * 60,
            _ => return Err(bad()),
        };
        Ok(Every { minutes })
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minutes {
            m if m % (24 * 60) == 0 => write!(f, "{}d", m / (24 * 60)),
            m if m % 60 == 0 => write!(f, "{}h", m / 60),
            m => write!(f, "{m}m"),
        }
    }
}

impl Every {
    /// The cron fields (scrontab wants a step above 1: every minute is `*`).
    pub fn cron(self) -> String {
        match self.minutes {
            1 => "* * * * *".into(),
            m if m < 60 => format!("*/{m} * * * *"),
            60 => "0 * * * *".into(),
            m if m < 24 * 60 => format!("0 */{} * * *", m / 60),
            _ => "0 0 * * *".into(),
        }
    }

    pub fn seconds(self) -> u64 {
        u64::from(self.minutes) * 60
    }
}

/// The schedule's name: the notebook's stem (letters, digits, `_`, `-`)
/// and a hash of its path and the profile, so each notebook and profile
/// has one schedule and installing again replaces it.
pub fn schedule_id(notebook: &std::path::Path, profile: &str) -> String {
    let stem: String = notebook
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-".contains(*c))
        .take(40)
        .collect();
    let mut h = Sha256::new();
    h.update(notebook.to_string_lossy().as_bytes());
    h.update(b"\0");
    h.update(profile.as_bytes());
    let hash = hex::encode(h.finalize());
    format!(
        "{}-{}",
        if stem.is_empty() { "notebook" } else { &stem },
        &hash[..10]
    )
}

/// The job name of a schedule's ticks (scrontab entry and fallback job).
pub fn job_name(id: &str) -> String {
    format!("slurmbook-tick-{id}")
}

/// `tick.sh`: runs `slurmbook tick` on the snapshot with the host-less
/// profile, with the environment the installing session had for Slurm
/// (`SLURM_CONF`, `PATH`: scrontab jobs get a login environment), its
/// output appended to `tick.log` beside the state.
pub struct TickScript<'a> {
    pub dir: &'a str,
    pub binary: &'a str,
    pub notebook: &'a str,
    pub profile: &'a str,
    /// `(name, value)` exported first; values are quoted.
    pub env: &'a [(&'a str, String)],
}

impl TickScript<'_> {
    pub fn text(&self) -> Result<String, String> {
        for p in [self.dir, self.binary, self.notebook] {
            check_abs_path(p).map_err(|e| e.to_string())?;
        }
        let mut s = String::from("#!/bin/sh\n# Written by slurmbook schedule install.\n");
        for (name, value) in self.env {
            if !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') || value.contains('\n') {
                return Err(format!("cannot export {name}"));
            }
            s.push_str(&format!("{name}={}\nexport {name}\n", quote(value)));
        }
        s.push_str(&format!(
            "cd {dir} || exit 2\nexec {bin} tick {nb} --profile {profile} >> {dir}/tick.log 2>&1\n",
            dir = self.dir,
            bin = self.binary,
            nb = self.notebook,
            profile = quote(self.profile),
        ));
        Ok(s)
    }
}

/// The lines that mark a schedule's block in a scrontab.
fn markers(id: &str) -> (String, String) {
    (
        format!("# slurmbook schedule {id} begin"),
        format!("# slurmbook schedule {id} end"),
    )
}

/// `crontab` without the block of schedule `id`.
pub fn without_block(crontab: &str, id: &str) -> String {
    let (begin, end) = markers(id);
    let mut out = String::new();
    let mut inside = false;
    for line in crontab.lines() {
        if line.trim() == begin {
            inside = true;
        } else if line.trim() == end {
            inside = false;
        } else if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Whether `crontab` has the block of schedule `id`.
pub fn has_block(crontab: &str, id: &str) -> bool {
    let (begin, _) = markers(id);
    crontab.lines().any(|l| l.trim() == begin)
}

/// `crontab` with the block of schedule `id` (replacing an older one):
/// `#SCRON` options (`sbatch` options, validated) and the cron line.
pub fn with_block(
    crontab: &str,
    id: &str,
    every: Every,
    script: &str,
    options: &[(&str, String)],
) -> Result<String, String> {
    check_abs_path(script).map_err(|e| e.to_string())?;
    let (begin, end) = markers(id);
    let mut out = without_block(crontab, id);
    out.push_str(&format!("{begin}\n#SCRON --job-name={}\n", job_name(id)));
    for (name, value) in options {
        out.push_str(&format!("#SCRON --{name}={}\n", quote(value)));
    }
    out.push_str(&format!("{} {script}\n{end}\n", every.cron()));
    Ok(out)
}

/// The fallback where scrontab is off: a batch script that, while the
/// schedule is enabled (the file `enabled` in its directory), first
/// submits itself again to begin after `every`, then ticks.
pub fn fallback_script(
    dir: &str,
    id: &str,
    every: Every,
    options: &[(&str, String)],
) -> Result<String, String> {
    check_abs_path(dir).map_err(|e| e.to_string())?;
    let name = job_name(id);
    let mut sbatch = format!(
        "sbatch --parsable --job-name={name} --begin=now+{} --output={dir}/fallback.log --open-mode=append",
        every.seconds()
    );
    for (opt, value) in options {
        sbatch.push_str(&format!(" --{opt}={}", quote(value)));
    }
    Ok(format!(
        "#!/bin/sh\n# Written by slurmbook schedule install --fallback: scrontab is off here.\n\
         [ -f {dir}/enabled ] || exit 0\n\
         {sbatch} {dir}/fallback.sh > {dir}/fallback.next || echo 'resubmitting failed' >&2\n\
         {dir}/tick.sh\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadences_become_cron_lines() {
        let cron = |s: &str| s.parse::<Every>().unwrap().cron();
        assert_eq!(cron("1m"), "* * * * *");
        assert_eq!(cron("15m"), "*/15 * * * *");
        assert_eq!(cron("1h"), "0 * * * *");
        assert_eq!(cron("6h"), "0 */6 * * *");
        assert_eq!(cron("1d"), "0 0 * * *");
        for bad in ["7m", "0m", "60m", "5h", "2d", "15", "m", "1m; rm"] {
            assert!(bad.parse::<Every>().is_err(), "{bad}");
        }
        assert_eq!("15m".parse::<Every>().unwrap().to_string(), "15m");
    }

    #[test]
    fn blocks_replace_each_other_and_keep_the_users_lines() {
        let mine = "# my own\n0 1 * * * /home/me/backup.sh\n";
        let one = with_block(mine, "nb-1", "15m".parse().unwrap(), "/s/tick.sh", &[]).unwrap();
        assert!(one.starts_with(mine));
        assert!(one.contains("#SCRON --job-name=slurmbook-tick-nb-1\n*/15 * * * * /s/tick.sh\n"));
        let opts = [("time", "00:10:00".to_string())];
        let two = with_block(&one, "nb-1", "1m".parse().unwrap(), "/s/tick.sh", &opts).unwrap();
        assert_eq!(two.matches("begin").count(), 1, "{two}");
        assert!(two.contains("#SCRON --time=00:10:00\n* * * * * /s/tick.sh"));
        assert!(has_block(&two, "nb-1") && !has_block(&two, "nb-2"));
        assert_eq!(without_block(&two, "nb-1"), mine);
        assert!(with_block(mine, "x", "1m".parse().unwrap(), "/s/t ick.sh", &[]).is_err());
    }

    #[test]
    fn scripts_quote_what_they_export_and_refuse_bad_paths() {
        let env = [
            ("PATH", "/usr/bin:/bin".to_string()),
            ("SLURM_CONF", "/a b/slurm.conf".to_string()),
        ];
        let s = TickScript {
            dir: "/scratch/sb/schedules/nb-1",
            binary: "/scratch/sb/cache/abc",
            notebook: "/scratch/sb/schedules/nb-1/notebook.ipynb",
            profile: "cluster",
            env: &env,
        };
        let text = s.text().unwrap();
        assert!(
            text.contains("SLURM_CONF='/a b/slurm.conf'\nexport SLURM_CONF\n"),
            "{text}"
        );
        assert!(text.contains("exec /scratch/sb/cache/abc tick /scratch/sb/schedules/nb-1/notebook.ipynb --profile cluster"));
        let bad = TickScript {
            dir: "/tmp/$(id)",
            ..s
        };
        assert!(bad.text().is_err());
        let f = fallback_script("/s/d", "nb-1", "1m".parse().unwrap(), &[]).unwrap();
        assert!(f.contains("--begin=now+60"), "{f}");
        assert!(f.contains("[ -f /s/d/enabled ] || exit 0"));
        assert!(schedule_id(std::path::Path::new("/w/my nb!.ipynb"), "c").starts_with("mynb-"));
    }
}
