//! `ferry uploads ls|abort`: unfinished multipart uploads on the server,
//! which cost storage until completed or aborted.

use super::escape::visible;
use std::time::Duration;

use super::args::UploadsCmd;
use super::ls::{format_time, parse_remote};
use super::setup::Setup;
use super::{CliError, Outcome};
use crate::store::MultipartUpload;

/// `7d`, `12h`, `30m`, `45s`.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    crate::units::parse_duration(s, "d")
}

async fn all_uploads(
    setup: &Setup,
    url: &str,
) -> Result<
    (
        crate::location::RemoteUrl,
        super::setup::StoreHandle,
        Vec<MultipartUpload>,
    ),
    CliError,
> {
    let r = parse_remote(url)?;
    let h = setup.store_for(&r)?;
    let mut out = Vec::new();
    let mut next = None;
    loop {
        let page = h
            .store
            .list_multipart_uploads(&r.bucket, &r.key, next.as_ref())
            .await?;
        out.extend(page.uploads);
        match page.next {
            Some(n) if Some(&n) != next.as_ref() => next = Some(n),
            _ => break,
        }
    }
    Ok((r, h, out))
}

pub async fn run(setup: &Setup, cmd: UploadsCmd) -> Result<Outcome, CliError> {
    match cmd {
        UploadsCmd::Ls { url } => {
            let (_, _, uploads) = all_uploads(setup, &url).await?;
            for u in &uploads {
                println!(
                    "{}  {}  {}",
                    format_time(u.initiated),
                    visible(&u.key),
                    visible(&u.upload_id)
                );
            }
            setup
                .reporter
                .say(&format!("{} unfinished upload(s)", uploads.len()));
            Ok(Outcome::Success)
        }
        UploadsCmd::Abort { url, older_than } => {
            let min_age = older_than
                .as_deref()
                .map(parse_age)
                .transpose()
                .map_err(CliError::Usage)?;
            let (r, h, uploads) = all_uploads(setup, &url).await?;
            let now = time::OffsetDateTime::now_utc();
            let (mut aborted, mut failed) = (0, 0);
            for u in uploads {
                if let Some(age) = min_age {
                    if now - u.initiated < age {
                        continue;
                    }
                }
                match h
                    .store
                    .abort_multipart_upload(&r.bucket, &u.key, &u.upload_id)
                    .await
                {
                    Ok(()) => {
                        aborted += 1;
                        setup.reporter.say(&format!(
                            "aborted {} ({})",
                            r.with_key(u.key),
                            u.upload_id
                        ));
                    }
                    Err(e) => {
                        failed += 1;
                        setup.reporter.error(&e.to_string());
                    }
                }
            }
            setup.reporter.say(&format!("{aborted} upload(s) aborted"));
            Ok(if failed > 0 {
                Outcome::SomeFailed
            } else {
                Outcome::Success
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_age("30m").unwrap(), Duration::from_secs(1800));
        assert!(parse_age("x").is_err());
        assert!(parse_age("3y").is_err());
    }
}
