//! Argument definitions. Command shapes follow ossutil (`cp -r -u`,
//! `--checkpoint-dir`, `-j`) so its users feel at home.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::SignatureVersion;
use crate::store::dialect::Addressing;
use crate::sync::plan::MaxDelete;
use crate::units::parse_size;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Move files and directory trees to and from S3 and Alibaba Cloud OSS, resumably",
    after_help = "Locations are local paths, s3://BUCKET/KEY or oss://BUCKET/KEY.\n\
Credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials) for s3://,\n\
OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET for oss://, or a profile in the config file.\n\
Exit codes: 0 success, 1 some items failed, 2 usage or configuration error, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Endpoint URL, e.g. http://127.0.0.1:3900 or https://oss-cn-hangzhou.aliyuncs.com;
    /// repeat it for the nodes of one cluster (requests are spread over
    /// them, and one that stops answering is avoided)
    /// [env: AWS_ENDPOINT_URL for s3://, OSS_ENDPOINT for oss://]
    #[arg(long, global = true, value_name = "URL", action = clap::ArgAction::Append)]
    pub endpoint: Vec<String>,
    /// Region [env: AWS_REGION / AWS_DEFAULT_REGION, OSS_REGION]
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Bucket addressing; path style is automatic for IP and localhost endpoints
    #[arg(long, global = true, value_enum, value_name = "STYLE")]
    pub addressing_style: Option<Addressing>,
    /// OSS signature version (v4 is the default and required by new accounts)
    #[arg(long, global = true, value_enum, value_name = "V")]
    pub signature_version: Option<SignatureVersion>,
    /// Profile from the config file
    #[arg(long, global = true, env = "FERRY_PROFILE")]
    pub profile: Option<String>,
    /// Config file [default: $XDG_CONFIG_HOME/ferry/config.toml]
    #[arg(long, global = true, value_name = "PATH", env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Send unsigned requests (public buckets)
    #[arg(long, global = true)]
    pub no_sign_request: bool,
    /// Limit transfer bandwidth (bytes per second, both directions together), e.g. 10M
    #[arg(long, global = true, value_parser = size_arg, value_name = "RATE")]
    pub bwlimit: Option<u64>,
    /// Fail a request once nothing has moved either way for this long
    /// (however long a large or rate-limited body takes), e.g. 30s
    /// [default: the profile's idle_timeout, else 60s]
    #[arg(long, global = true, value_parser = idle_arg, value_name = "DURATION")]
    pub idle_timeout: Option<std::time::Duration>,
    /// What uploads send for the server to check each body against:
    /// crc64nvme, crc32c, crc32 or md5 [default: crc64nvme where the store
    /// keeps checksums, else md5; CRC-64/ECMA on OSS]
    #[arg(long, global = true, value_parser = checksum_arg, value_name = "ALGORITHM")]
    pub checksum_algorithm: Option<crate::checksum::ChecksumChoice>,
    /// SSE-C: write and read objects encrypted with the 256-bit key in
    /// FILE (32 bytes, or their base64); needed to download them too
    #[arg(long, global = true, value_name = "FILE")]
    pub sse_c_key_file: Option<PathBuf>,
    /// Requests on the bucket say the requester pays for them (S3 and OSS
    /// requester-pays buckets) [default: the profile's requester_pays]
    #[arg(long, global = true)]
    pub requester_pays: bool,
    /// Trust the CA certificates in this PEM file for HTTPS (a private
    /// CA) in addition to the system's [env: AWS_CA_BUNDLE for s3://]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Attempts per request for network errors, throttling and 5xx
    #[arg(long, global = true, default_value_t = 6, value_name = "N")]
    pub retries: u32,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log each request (never credentials)
    #[arg(long, global = true)]
    pub debug: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy files or objects (upload, download, or server-side copy)
    Cp(Box<CpArgs>),
    /// Compare a local tree with a prefix: missing, extra and differing files
    Check(CheckArgs),
    /// Write objects to standard output, one after another
    Cat(CatArgs),
    /// List objects under a prefix
    Ls(LsArgs),
    /// Total size and object count under a prefix (per directory with -d N)
    Du(DuArgs),
    /// Show an object's size, times, ETag and metadata
    Stat(StatArgs),
    /// Delete an object, or every object under a prefix with -r
    Rm(RmArgs),
    /// Make a bucket
    Mb(BucketArgs),
    /// Remove an empty bucket
    Rb(BucketArgs),
    /// Inspect or clean the resume checkpoints in a checkpoint directory
    #[command(subcommand)]
    Checkpoint(CheckpointCmd),
    /// List or abort unfinished multipart uploads on the server
    #[command(subcommand)]
    Uploads(UploadsCmd),
    /// Mount a bucket prefix as a folder (FUSE); writes upload resumably
    Mount(Box<MountArgs>),
    /// Unmount a `ferry mount`, waiting for its pending uploads
    Unmount(UnmountArgs),
    /// Run backup jobs defined in the config file
    Run(RunArgs),
    /// Run a job, then keep its destination in sync as the source changes
    Watch(WatchArgs),
    /// List the config file's jobs and their last results
    Jobs,
    /// Show the effective configuration
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Print a shell completion script (e.g. `ferry completions bash >
    /// /etc/bash_completion.d/ferry`)
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `ferry man > ferry.1`, or write
    /// one page per command into a directory
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write ferry.1, ferry-cp.1, … into DIR instead of printing ferry.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Settings a job run may override from the command line.
#[derive(Debug, Args, Clone, Default)]
pub struct JobOverrides {
    /// Show what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Files at once
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Parts in flight per file
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Part size
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    pub part_size: Option<u64>,
    /// Checkpoint directory (default: the job's)
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// One JSON object per event, and a summary per job
    #[arg(long)]
    pub json: bool,
    /// Delete nothing if a pass would delete more than N files or N% of the
    /// destination [default: the job's, else 50%]
    #[arg(long, value_parser = MaxDelete::parse, value_name = "N|N%")]
    pub max_delete: Option<MaxDelete>,
    /// Let an empty source delete everything at the destination
    #[arg(long)]
    pub allow_empty_source: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Jobs to run, in this order
    pub names: Vec<String>,
    /// Run every job in the config file
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    #[command(flatten)]
    pub overrides: JobOverrides,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The job to watch (its source must be local)
    pub name: String,
    #[command(flatten)]
    pub overrides: JobOverrides,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print profiles (secrets masked) and each job's effective settings with their origin
    Show {
        /// Only this job
        job: Option<String>,
    },
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s)
}

fn idle_arg(s: &str) -> Result<std::time::Duration, String> {
    match crate::units::parse_duration(s, "s")? {
        d if d.is_zero() => Err("the idle timeout must be more than 0".into()),
        d => Ok(d),
    }
}

fn checksum_arg(s: &str) -> Result<crate::checksum::ChecksumChoice, String> {
    crate::checksum::ChecksumChoice::parse(s).ok_or_else(|| {
        format!(
            "\"{s}\" is not one of {}",
            crate::checksum::ChecksumChoice::NAMES
        )
    })
}

#[derive(Debug, Args, Clone)]
pub struct TransferArgs {
    /// Keep resume state here; rerunning the same command then continues
    /// an interrupted transfer instead of starting over
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Files at or above this size move in parts (and can resume)
    #[arg(long, default_value = "100M", value_parser = size_arg, value_name = "SIZE")]
    pub bigfile_threshold: u64,
    /// Part size (at least 5M); grown automatically to stay within 10,000 parts [default: 8M]
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    pub part_size: Option<u64>,
    /// Parts in flight per file
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: usize,
    #[command(flatten)]
    pub object: ObjectArgs,
}

/// What uploads store with each object besides its bytes.
#[derive(Debug, Args, Clone, Default)]
pub struct ObjectArgs {
    /// Content-Type of every upload [default: guessed from the file name]
    #[arg(long, value_name = "TYPE", conflicts_with = "no_guess_mime_type")]
    pub content_type: Option<String>,
    /// Send no Content-Type (the store's default) instead of guessing one
    #[arg(long)]
    pub no_guess_mime_type: bool,
    /// Storage class: S3 STANDARD, STANDARD_IA, ONEZONE_IA,
    /// INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE…; OSS
    /// Standard, IA, Archive, ColdArchive, DeepColdArchive
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Server-side encryption with the store's keys: AES256, or aws:kms
    /// (OSS: KMS) with --sse-kms-key-id
    #[arg(long, value_name = "AES256|aws:kms")]
    pub sse: Option<String>,
    /// The KMS key for --sse aws:kms [default: the store's]
    #[arg(long, value_name = "KEY", requires = "sse")]
    pub sse_kms_key_id: Option<String>,
    /// A canned ACL: private, public-read, bucket-owner-full-control…
    #[arg(long, value_name = "ACL")]
    pub acl: Option<String>,
    /// User metadata on every upload (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    #[arg(long, value_name = "VALUE")]
    pub cache_control: Option<String>,
    #[arg(long, value_name = "VALUE")]
    pub content_disposition: Option<String>,
    #[arg(long, value_name = "VALUE")]
    pub content_encoding: Option<String>,
    /// When caches should consider the object stale (an HTTP date or RFC 3339)
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,
    /// Tags on every upload (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub tag: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// A local path (any bytes), an s3:// / oss:// URL, or `-` for
    /// standard input (as destination: standard output)
    pub source: std::ffi::OsString,
    pub destination: std::ffi::OsString,
    /// Copy directories / prefixes recursively
    #[arg(short, long)]
    pub recursive: bool,
    /// Copy this version of the source object (a versioned bucket; see
    /// `ls --versions`); to its own key, it restores that version
    #[arg(long, value_name = "ID", conflicts_with = "recursive")]
    pub version_id: Option<String>,
    /// Files transferred at once (with -r)
    #[arg(short, long, default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// Only send files that are missing or newer at the destination
    /// (same time but different size also counts)
    #[arg(short, long)]
    pub update: bool,
    /// Also delete destination files that are not in the source (with -r)
    #[arg(long)]
    pub delete: bool,
    /// With --delete: delete nothing if more than N files or N% of the
    /// destination would go (with --watch default 50%)
    #[arg(long, value_parser = MaxDelete::parse, value_name = "N|N%")]
    pub max_delete: Option<MaxDelete>,
    /// With --delete: let an empty source delete everything at the destination
    #[arg(long)]
    pub allow_empty_source: bool,
    /// Put what the copy would replace or delete here first: a prefix
    /// (s3://b/old/, copied server-side) when the destination is remote,
    /// a directory when it is local; outside the destination
    #[arg(long, value_name = "URL|DIR")]
    pub backup_dir: Option<String>,
    /// Add this to the names of backups; alone, keeps them beside the
    /// files (which the copy then leaves out: `*SUFFIX` is excluded)
    #[arg(long, value_name = "SUFFIX")]
    pub suffix: Option<String>,
    /// Copying between two URLs: reach the source at this endpoint (another
    /// server or cloud; the copy then streams through memory)
    #[arg(long, value_name = "URL")]
    pub source_endpoint: Option<String>,
    /// Copying between two URLs: reach the source with this profile (its
    /// endpoint, region and credentials)
    #[arg(long, value_name = "NAME")]
    pub source_profile: Option<String>,
    /// Show what would be transferred, skipped and deleted, and why; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Only copy files matching this glob (repeatable; `*.jpg`, `docs/**`)
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files matching this glob; `dir/` prunes a directory (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    #[command(flatten)]
    pub rule_files: RuleFileArgs,
    /// Copy the targets of symbolic links instead of skipping them
    #[arg(long)]
    pub follow_symlinks: bool,
    /// With -u (implied): a file of the destination's size is up to date,
    /// whatever its time (no HEAD per object)
    #[arg(long, conflicts_with = "ignore_existing")]
    pub size_only: bool,
    /// Never replace what the destination has (implies -u)
    #[arg(long)]
    pub ignore_existing: bool,
    /// With -u (implied): a file of the destination's size is up to date
    /// when its content's digest matches the object's, whatever the times
    /// (digests are cached; an unchanged file is read once)
    #[arg(short = 'c', long, conflicts_with_all = ["size_only", "ignore_existing"])]
    pub checksum: bool,
    /// Only files of at least SIZE
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    pub min_size: Option<u64>,
    /// Only files of at most SIZE
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    pub max_size: Option<u64>,
    /// Only files modified at least this long ago (7d, 36h) or before a date (2026-01-31)
    #[arg(long, value_name = "AGE|DATE")]
    pub min_age: Option<String>,
    /// Only files modified within this long (7d, 36h) or since a date
    #[arg(long, value_name = "AGE|DATE")]
    pub max_age: Option<String>,
    /// One JSON object per event on stdout, and a final summary
    #[arg(long)]
    pub json: bool,
    /// After the copy, keep watching the local source and send changes (with -r)
    #[arg(long)]
    pub watch: bool,
    /// Memory for buffered parts and small files across all transfers [default: 256M]
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    pub memory_budget: Option<u64>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The source: a local directory or s3://BUCKET/PREFIX (oss://…)
    pub source: std::ffi::OsString,
    /// The destination: a local directory or a URL (two URLs compare two
    /// prefixes, on one store or two)
    pub destination: std::ffi::OsString,
    /// Checking two URLs: reach the source at this endpoint
    #[arg(long, value_name = "URL")]
    pub source_endpoint: Option<String>,
    /// Checking two URLs: reach the source with this profile
    #[arg(long, value_name = "NAME")]
    pub source_profile: Option<String>,
    /// Compare sizes only (listings, no file data read)
    #[arg(long, conflicts_with_all = ["download", "fast"])]
    pub size_only: bool,
    /// Compare sizes, then modification times (one HEAD per file of equal
    /// size, no file data read)
    #[arg(long, conflicts_with = "download")]
    pub fast: bool,
    /// Read every object and compare its bytes with the file's (for stores
    /// that keep no checksum)
    #[arg(long)]
    pub download: bool,
    /// Only check that what the source has is in the destination
    #[arg(long)]
    pub one_way: bool,
    /// Files compared at once
    #[arg(short, long, default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// Only paths matching GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out paths matching GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    #[command(flatten)]
    pub rule_files: RuleFileArgs,
    /// Compare the targets of symbolic links instead of skipping them
    #[arg(long)]
    pub follow_symlinks: bool,
    /// One JSON object per finding that is not a match, then a summary
    #[arg(long)]
    pub json: bool,
    /// Print the files found the same too
    #[arg(long)]
    pub matched: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    pub url: String,
    /// List everything under the prefix, not just one level
    #[arg(short, long)]
    pub recursive: bool,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Exact byte counts instead of human sizes
    #[arg(long)]
    pub bytes: bool,
    /// Every version and delete marker (versioned buckets), newest first
    #[arg(long)]
    pub versions: bool,
}

/// Filters read from files, shared by `cp -r` and `check`.
#[derive(Debug, Args, Clone, Default)]
pub struct RuleFileArgs {
    /// Include patterns read from FILE, one per line (repeatable)
    #[arg(long, value_name = "FILE")]
    pub include_from: Vec<PathBuf>,
    /// Exclude patterns read from FILE, one per line (repeatable)
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
    /// Only the relative paths FILE lists, one per line (no full walk)
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    /// s3://BUCKET/KEY or oss://BUCKET/KEY, one or more
    #[arg(required = true)]
    pub urls: Vec<String>,
    /// This version of the object (one URL only)
    #[arg(long, value_name = "ID")]
    pub version_id: Option<String>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

#[derive(Debug, Args)]
pub struct DuArgs {
    /// s3://BUCKET[/PREFIX] or oss://BUCKET[/PREFIX]
    pub url: String,
    /// Also show each "directory" down to this many levels below the prefix
    #[arg(short, long, default_value_t = 0, value_name = "N")]
    pub depth: usize,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Exact byte counts instead of human sizes
    #[arg(long)]
    pub bytes: bool,
}

#[derive(Debug, Args)]
pub struct StatArgs {
    pub url: String,
    #[arg(long)]
    pub json: bool,
    /// This version of the object rather than the current one
    #[arg(long, value_name = "ID")]
    pub version_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    pub url: String,
    /// Delete every object under the prefix
    #[arg(short, long)]
    pub recursive: bool,
    /// Delete this version (or delete marker) for good; removing a
    /// delete marker brings the version below it back
    #[arg(long, value_name = "ID", conflicts_with_all = ["recursive", "versions"])]
    pub version_id: Option<String>,
    /// Delete every version and delete marker of the key (with -r: of
    /// every key under the prefix) for good
    #[arg(long)]
    pub versions: bool,
    /// Print what would be deleted; delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct BucketArgs {
    /// s3://BUCKET or oss://BUCKET
    pub url: String,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCmd {
    /// List pending transfers and their progress, and ferry's temporary
    /// files under TREE (a killed download leaves one behind)
    Ls {
        #[arg(long, value_name = "DIR")]
        checkpoint_dir: Option<PathBuf>,
        /// Directories to search for download temporaries
        #[arg(value_name = "TREE")]
        trees: Vec<PathBuf>,
    },
    /// Remove checkpoints that cannot be resumed (damaged, source gone or
    /// changed), and temporaries under TREE that no download holds and no
    /// resumable checkpoint vouches for
    Clean {
        #[arg(long, value_name = "DIR")]
        checkpoint_dir: Option<PathBuf>,
        /// Directories to search for download temporaries
        #[arg(value_name = "TREE")]
        trees: Vec<PathBuf>,
        /// Remove every checkpoint and unheld temporary, resumable or not
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UploadsCmd {
    /// List unfinished multipart uploads under a prefix
    Ls { url: String },
    /// Abort unfinished multipart uploads under a prefix
    Abort {
        url: String,
        /// Only uploads started longer ago than this (e.g. 7d, 12h, 30m)
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
    },
}

fn mode_arg(s: &str) -> Result<u16, String> {
    u16::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("'{s}' is not an octal mode such as 644"))
}

/// A duration whose bare number means seconds (`30`, `30s`, `5m`, `1h`).
fn duration_secs_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::units::parse_duration(s, "s")
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// s3://BUCKET[/PREFIX] or oss://BUCKET[/PREFIX]
    pub url: String,
    /// What files written through the mount are stored with
    #[command(flatten)]
    pub object: ObjectArgs,
    /// An existing directory
    pub mountpoint: PathBuf,
    /// Staging area for written files and their upload journal
    /// [default: $XDG_CACHE_HOME/ferry/mounts/<bucket>-<hash>]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Resume state of large uploads [default: <cache-dir>/checkpoints]
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Refuse every change (EROFS)
    #[arg(long)]
    pub read_only: bool,
    /// Let other users access the mount (root, or user_allow_other in /etc/fuse.conf)
    #[arg(long)]
    pub allow_other: bool,
    /// Owner shown for every file [default: your uid]
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,
    /// Group shown for every file [default: your gid]
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,
    /// Permission bits of files (octal)
    #[arg(long, default_value = "644", value_parser = mode_arg, value_name = "MODE")]
    pub file_mode: u16,
    /// Permission bits of directories (octal)
    #[arg(long, default_value = "755", value_parser = mode_arg, value_name = "MODE")]
    pub dir_mode: u16,
    /// Stay in the foreground (otherwise ferry detaches once mounted and logs to <cache-dir>/mount.log)
    #[arg(short, long)]
    pub foreground: bool,
    /// How long directory listings and file attributes are cached
    #[arg(long, default_value = "5", value_parser = duration_secs_arg, value_name = "SECS")]
    pub list_ttl: std::time::Duration,
    /// How long unmount (or SIGTERM) waits for pending uploads
    #[arg(long, default_value = "300", value_parser = duration_secs_arg, value_name = "SECS")]
    pub flush_timeout: std::time::Duration,
    /// Files at or above this size upload in parts (and resume after a crash)
    #[arg(long, default_value = "16M", value_parser = size_arg, value_name = "SIZE")]
    pub multipart_threshold: u64,
    /// Part size for multipart uploads
    #[arg(long, default_value = "8M", value_parser = size_arg, value_name = "SIZE")]
    pub part_size: u64,
    /// Parts in flight per upload
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: usize,
    /// Most objects a directory rename may copy (larger renames fail with EXDEV; mv then copies)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub rename_limit: usize,
}

#[derive(Debug, Args)]
pub struct UnmountArgs {
    pub mountpoint: PathBuf,
    /// Detach now even if files are open; they are uploaded when closed
    #[arg(long)]
    pub lazy: bool,
    /// How long to wait for the mount's pending uploads
    #[arg(long, default_value = "600", value_parser = duration_secs_arg, value_name = "SECS")]
    pub timeout: std::time::Duration,
}
