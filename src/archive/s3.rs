//! The S3 backend (AWS S3, MinIO and other S3-compatible stores).
//!
//! ```text
//! <prefix>segments/<source>/<date>/<name>   one object per segment
//! <prefix>manifest/<flush, 12 digits>.ndjson one object per flush: its lines
//! ```
//!
//! S3 objects are immutable (and Object-Locked), so the manifest is
//! appended by writing one new object per flush; read in name order, the
//! objects' lines are the manifest. A PUT is atomic: a manifest object is
//! either whole or absent, and a crash before it leaves at most an unlisted
//! segment object (see the module documentation of `archive` on why it
//! cannot shadow a listed one).
//!
//! Reads and listings, credentials and SigV4 signing come from the
//! `object_store` crate. Writes are signed requests of our own (with
//! `object_store`'s signer) because `object_store` cannot send the Object
//! Lock headers (`x-amz-object-lock-mode`, `x-amz-object-lock-retain-until-date`)
//! nor read a bucket's Object Lock configuration. Every PUT carries
//! `Content-MD5` and `x-amz-checksum-sha256`: S3 requires one of them for
//! writes with Object Lock, and both make the store check the bytes.
//!
//! Credentials: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`, web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`,
//! `AWS_ROLE_ARN`), the ECS container endpoint and the EC2 instance
//! metadata service (all through `object_store`), and, when no key is in
//! the environment, the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`
//! or `~/.aws/credentials`, profile `AWS_PROFILE` or `default`: static keys
//! only; SSO and `credential_process` profiles are not supported).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Md5;
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use super::ManifestLine;
use super::segment::FinishedSegment;
use super::settings::ArchiveS3Config;
use crate::body_limit::{MAX_ANSWER_BYTES, read_capped_text};

/// Segments larger than this are sent as a multipart upload in parts of
/// this size (S3 allows at most 5 GiB in one PUT, and a part is read into
/// memory).
pub const PART_SIZE: u64 = 64 * 1024 * 1024;

pub struct S3Backend {
    store: AmazonS3,
    http: reqwest::Client,
    config: ArchiveS3Config,
    /// `https://<bucket>.s3.<region>.amazonaws.com` or `<endpoint>/<bucket>`.
    base_url: String,
    tmp_dir: PathBuf,
    /// The secret parts of the credentials last used to sign (secret key,
    /// session token): what the sink's redaction must learn, as they come
    /// from the environment or a credentials service, not the configuration.
    credential_secrets: std::sync::Mutex<Vec<String>>,
}

impl S3Backend {
    /// Connects; with Object Lock configured, refuses a bucket that does
    /// not have Object Lock enabled. `state_dir` holds segments being written.
    pub async fn open(
        config: &ArchiveS3Config,
        sink: &str,
        state_dir: &Path,
    ) -> anyhow::Result<S3Backend> {
        let backend = S3Backend::connect(config, Some((sink, state_dir)))?;
        backend.learn_credentials().await;
        if config.object_lock.is_some()
            && let Err(e) = backend.check_object_lock().await
        {
            // The backend is dropped with the credentials it learned: the
            // error leaves without them.
            let mut redactor = crate::redact::Redactor::new();
            redactor.learn_session_secrets(backend.session_secrets());
            anyhow::bail!(redactor.redact(&format!("{e:#}")));
        }
        Ok(backend)
    }

    /// A client for reading (verify, export): no temp directory, no checks.
    pub fn connect(
        config: &ArchiveS3Config,
        staging: Option<(&str, &Path)>,
    ) -> anyhow::Result<S3Backend> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && let Some((key, secret, token)) = credentials_file()?
        {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
            if let Some(token) = token {
                builder = builder.with_token(token);
            }
        }
        let base_url = match &config.endpoint {
            Some(endpoint) => {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
                format!("{endpoint}/{}", config.bucket)
            }
            None => format!(
                "https://{}.s3.{}.amazonaws.com",
                config.bucket, config.region
            ),
        };
        let store = builder
            .build()
            .map_err(|e| anyhow::anyhow!("S3 bucket {}: {e}", config.bucket))?;
        let tmp_dir = match staging {
            Some((sink, dir)) => {
                let tmp = dir.join(format!(".claudit-archive-{sink}.tmp"));
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir_all(&tmp).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot create {} (segments are staged there before upload): {e}",
                        tmp.display()
                    )
                })?;
                tmp
            }
            None => std::env::temp_dir(),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(600))
            // A redirect would carry the session token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(S3Backend {
            store,
            http,
            config: config.clone(),
            base_url,
            tmp_dir,
            credential_secrets: Default::default(),
        })
    }

    /// Fetches the credentials (environment, credentials file or service)
    /// and remembers their secret parts, so an error of a request made
    /// before any of ours is signed is redacted too.
    pub async fn learn_credentials(&self) {
        if let Ok(credential) = self.store.credentials().get_credential().await {
            self.remember_credential(&credential);
        }
    }

    fn remember_credential(&self, credential: &object_store::aws::AwsCredential) {
        let mut secrets = self
            .credential_secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        secrets.clear();
        secrets.push(credential.secret_key.clone());
        secrets.extend(credential.token.clone());
    }

    /// The secret key and session token of the credentials last used.
    pub fn session_secrets(&self) -> Vec<String> {
        self.credential_secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.tmp_dir.clone()
    }

    /// `GetObjectLockConfiguration`: the bucket must have Object Lock enabled.
    pub async fn check_object_lock(&self) -> anyhow::Result<()> {
        let bucket = &self.config.bucket;
        let url = format!("{}?object-lock", self.base_url);
        let response = self
            .send(Method::GET, &url, Vec::new(), Vec::new())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the Object Lock configuration of bucket {bucket}: {e:#}"
                )
            })?;
        let status = response.status();
        let body = read_capped_text(response, MAX_ANSWER_BYTES, "GET ?object-lock").await?;
        let enabled = status.is_success()
            && xml_tag(&body, "ObjectLockEnabled").is_some_and(|v| v == "Enabled");
        if enabled {
            return Ok(());
        }
        if status.is_success() || status.as_u16() == 404 {
            anyhow::bail!(
                "bucket {bucket} does not have Object Lock enabled, but the sink asks for \
                 object_lock_mode; Object Lock can only be turned on for a versioned bucket \
                 (aws s3api put-object-lock-configuration, or create the bucket with \
                 --object-lock-enabled-for-bucket), or remove object_lock_mode and retention \
                 from the sink to archive without it"
            );
        }
        anyhow::bail!(
            "cannot read the Object Lock configuration of bucket {bucket}: HTTP {status}: {}; \
             the credentials need s3:GetBucketObjectLockConfiguration",
            xml_tag(&body, "Message").unwrap_or_else(|| body.chars().take(200).collect())
        )
    }

    /// Uploads a finished segment under `segments/<name>`.
    pub async fn put_segment(&self, name: &str, segment: FinishedSegment) -> anyhow::Result<()> {
        let key = format!("{}segments/{name}", self.config.prefix);
        let mut file = segment.file.reopen()?;
        if segment.bytes <= PART_SIZE {
            let mut body = Vec::with_capacity(segment.bytes as usize);
            file.read_to_end(&mut body)?;
            return self.put_object(&key, body).await;
        }
        self.put_multipart(&key, &mut file, segment.bytes).await
    }

    /// Writes one flush's manifest lines as `manifest/<flush>.ndjson`.
    pub async fn put_manifest(&self, flush: u64, lines: &[Vec<u8>]) -> anyhow::Result<()> {
        let key = format!("{}manifest/{flush:012}.ndjson", self.config.prefix);
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        self.put_object(&key, body).await
    }

    /// The manifest: every manifest object's lines, in name order.
    pub async fn manifest_lines(&self) -> anyhow::Result<Vec<ManifestLine>> {
        let prefix = ObjectPath::from(format!("{}manifest", self.config.prefix));
        let listed = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| {
                anyhow::anyhow!("listing the manifest in bucket {}: {e}", self.config.bucket)
            })?;
        let mut objects: Vec<_> = listed.objects.into_iter().map(|o| o.location).collect();
        objects.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        let mut lines = Vec::new();
        for object in objects {
            let bytes = self
                .store
                .get(&object)
                .await
                .map_err(|e| anyhow::anyhow!("reading {object}: {e}"))?
                .bytes()
                .await
                .map_err(|e| anyhow::anyhow!("reading {object}: {e}"))?;
            let shown = object
                .as_ref()
                .strip_prefix(self.config.prefix.as_str())
                .unwrap_or(object.as_ref())
                .to_string();
            let (complete, tail) = super::manifest::split_lines(&bytes);
            for (i, line) in complete.iter().chain(tail.iter()).enumerate() {
                lines.push(ManifestLine {
                    location: format!("{shown} line {}", i + 1),
                    number: lines.len() as u64 + 1,
                    bytes: line.to_vec(),
                });
            }
        }
        Ok(lines)
    }

    /// Downloads a segment into a temp file (`None` if there is no such object).
    pub async fn fetch_segment(&self, name: &str) -> anyhow::Result<Option<std::fs::File>> {
        let path = ObjectPath::from(format!("{}segments/{name}", self.config.prefix));
        let meta = match self.store.head(&path).await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => anyhow::bail!("reading segment {name}: {e}"),
        };
        let mut file = tempfile::tempfile()?;
        let mut offset = 0u64;
        while offset < meta.size {
            let end = (offset + PART_SIZE).min(meta.size);
            let chunk = self
                .store
                .get_range(&path, offset..end)
                .await
                .map_err(|e| anyhow::anyhow!("reading segment {name}: {e}"))?;
            std::io::Write::write_all(&mut file, &chunk)?;
            offset = end;
        }
        file.seek(SeekFrom::Start(0))?;
        Ok(Some(file))
    }

    /// Every segment object's name (for orphan reports).
    pub async fn segment_names(&self) -> anyhow::Result<Vec<String>> {
        let root = format!("{}segments/", self.config.prefix);
        let mut names = Vec::new();
        let mut stack = vec![ObjectPath::from(root.trim_end_matches('/'))];
        while let Some(dir) = stack.pop() {
            let listed = self.store.list_with_delimiter(Some(&dir)).await?;
            stack.extend(listed.common_prefixes);
            for o in listed.objects {
                if let Some(name) = o.location.as_ref().strip_prefix(root.as_str()) {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// The Object Lock headers of a write, retention counted from now.
    fn lock_headers(&self) -> Vec<(HeaderName, String)> {
        let Some(lock) = self.config.object_lock else {
            return Vec::new();
        };
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(lock.retention).unwrap_or(chrono::Duration::MAX);
        vec![
            (
                HeaderName::from_static("x-amz-object-lock-mode"),
                lock.mode.as_header().to_string(),
            ),
            (
                HeaderName::from_static("x-amz-object-lock-retain-until-date"),
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        ]
    }

    async fn put_object(&self, key: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let url = format!("{}/{}", self.base_url, encode_key(key));
        let mut headers = self.lock_headers();
        headers.extend(checksum_headers(&body));
        let response = self.send(Method::PUT, &url, headers, body).await?;
        expect_success(response, key, "PUT").await.map(|_| ())
    }

    /// CreateMultipartUpload (with the lock headers), UploadPart for each
    /// `PART_SIZE` slice, CompleteMultipartUpload; aborted on failure.
    async fn put_multipart(
        &self,
        key: &str,
        file: &mut std::fs::File,
        size: u64,
    ) -> anyhow::Result<()> {
        let object_url = format!("{}/{}", self.base_url, encode_key(key));
        let mut headers = self.lock_headers();
        headers.push((
            HeaderName::from_static("x-amz-checksum-algorithm"),
            "SHA256".into(),
        ));
        let response = self
            .send(
                Method::POST,
                &format!("{object_url}?uploads"),
                headers,
                Vec::new(),
            )
            .await?;
        let body = expect_success(response, key, "CreateMultipartUpload").await?;
        let upload_id = xml_tag(&body, "UploadId").ok_or_else(|| {
            anyhow::anyhow!("CreateMultipartUpload for {key}: no UploadId in the answer")
        })?;
        let upload_q = encode_query(&upload_id);
        let result: anyhow::Result<()> = async {
            let mut parts = String::new();
            let mut offset = 0u64;
            let mut number = 1;
            while offset < size {
                let len = PART_SIZE.min(size - offset);
                let mut part = vec![0u8; len as usize];
                file.seek(SeekFrom::Start(offset))?;
                file.read_exact(&mut part)?;
                let sha = B64.encode(Sha256::digest(&part));
                let url = format!("{object_url}?partNumber={number}&uploadId={upload_q}");
                let response = self
                    .send(Method::PUT, &url, checksum_headers(&part), part)
                    .await?;
                let status = response.status();
                let etag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let answer =
                    read_capped_text(response, MAX_ANSWER_BYTES, &format!("UploadPart {number}"))
                        .await?;
                let etag = match (status.is_success(), etag) {
                    (true, Some(etag)) => etag,
                    _ => anyhow::bail!("UploadPart {number} of {key}: HTTP {status}: {answer}"),
                };
                parts.push_str(&format!(
                    "<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag><ChecksumSHA256>{sha}</ChecksumSHA256></Part>"
                ));
                offset += len;
                number += 1;
            }
            let complete = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>");
            let response = self
                .send(
                    Method::POST,
                    &format!("{object_url}?uploadId={upload_q}"),
                    Vec::new(),
                    complete.into_bytes(),
                )
                .await?;
            let answer = expect_success(response, key, "CompleteMultipartUpload").await?;
            // S3 can answer 200 with an error in the body.
            if answer.contains("<Error>") {
                anyhow::bail!("CompleteMultipartUpload of {key}: {answer}");
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self
                .send(
                    Method::DELETE,
                    &format!("{object_url}?uploadId={upload_q}"),
                    Vec::new(),
                    Vec::new(),
                )
                .await;
        }
        result
    }

    /// Sends a request signed with SigV4 (`object_store`'s signer and
    /// credential chain).
    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: Vec<(HeaderName, String)>,
        body: Vec<u8>,
    ) -> anyhow::Result<reqwest::Response> {
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| anyhow::anyhow!("no AWS credentials: {e}"))?;
        self.remember_credential(&credential);
        let mut signed = HttpRequest::new(HttpRequestBody::from(Vec::new()));
        *signed.method_mut() = method.clone();
        *signed.uri_mut() = url
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid S3 URL: {e}"))?;
        for (name, value) in &headers {
            signed
                .headers_mut()
                .insert(name.clone(), HeaderValue::from_str(value)?);
        }
        let digest = Sha256::digest(&body);
        AwsAuthorizer::new(&credential, "s3", &self.config.region)
            .try_authorize(&mut signed, Some(&digest))
            .map_err(|e| anyhow::anyhow!("signing the request: {e}"))?;
        let mut signed_headers = signed.headers().clone();
        for name in ["authorization", "x-amz-security-token"] {
            if let Some(value) = signed_headers.get_mut(name) {
                value.set_sensitive(true);
            }
        }
        let response = self
            .http
            .request(method, url)
            .headers(signed_headers)
            .body(body)
            .send()
            .await?;
        Ok(response)
    }
}

/// `Content-MD5` and `x-amz-checksum-sha256` of a body.
fn checksum_headers(body: &[u8]) -> Vec<(HeaderName, String)> {
    vec![
        (
            HeaderName::from_static("content-md5"),
            B64.encode(<Md5 as md5::Digest>::digest(body)),
        ),
        (
            HeaderName::from_static("x-amz-checksum-sha256"),
            B64.encode(Sha256::digest(body)),
        ),
    ]
}

async fn expect_success(
    response: reqwest::Response,
    key: &str,
    what: &str,
) -> anyhow::Result<String> {
    let status = response.status();
    let body = read_capped_text(response, MAX_ANSWER_BYTES, &format!("{what} {key}")).await?;
    if status.is_success() {
        return Ok(body);
    }
    let code = xml_tag(&body, "Code").unwrap_or_default();
    let message = xml_tag(&body, "Message").unwrap_or_else(|| body.chars().take(300).collect());
    anyhow::bail!("{what} {key}: HTTP {status} {code}: {message}")
}

/// The text of the first `<tag>...</tag>` (enough for S3's small answers).
pub fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].trim().to_string())
}

/// Percent-encodes an object key for a path (keeps "/").
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn encode_query(value: &str) -> String {
    encode_key(value).replace('/', "%2F")
}

/// Static keys from the shared credentials file, when it has the profile.
fn credentials_file() -> anyhow::Result<Option<(String, String, Option<String>)>> {
    let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(".aws").join("credentials"),
            None => return Ok(None),
        },
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    Ok(parse_credentials(&text, &profile))
}

/// The INI format of `~/.aws/credentials`: `[profile]` then `key = value`.
fn parse_credentials(text: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let (mut key, mut secret, mut token) = (None, None, None);
    let mut in_profile = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => key = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((key?, secret?, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_profile_from_the_credentials_file() {
        let text = "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n\
                    [audit]\n# comment\naws_access_key_id=AKIAAUDIT\naws_secret_access_key=s2\naws_session_token = t\n";
        assert_eq!(
            parse_credentials(text, "default"),
            Some(("AKIADEFAULT".into(), "s1".into(), None))
        );
        assert_eq!(
            parse_credentials(text, "audit"),
            Some(("AKIAAUDIT".into(), "s2".into(), Some("t".into())))
        );
        assert_eq!(parse_credentials(text, "missing"), None);
    }

    #[test]
    fn finds_xml_tags_and_encodes_keys() {
        let body = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>";
        assert_eq!(
            xml_tag(body, "ObjectLockEnabled").as_deref(),
            Some("Enabled")
        );
        assert_eq!(xml_tag(body, "Rule"), None);
        assert_eq!(encode_key("a b/c+d.gz"), "a%20b/c%2Bd.gz");
        assert_eq!(encode_query("x/y=z"), "x%2Fy%3Dz");
    }
}
