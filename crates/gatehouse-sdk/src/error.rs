/// What can go wrong talking to the issuer.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered something that is not what was expected: {detail}")]
    Invalid { url: String, detail: String },
    #[error("the token endpoint refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
    },
}

impl SdkError {
    pub(crate) fn unreachable(url: &str, source: reqwest::Error) -> Self {
        Self::Unreachable {
            url: url.to_owned(),
            source,
        }
    }

    pub(crate) fn invalid(url: &str, detail: impl std::fmt::Display) -> Self {
        Self::Invalid {
            url: url.to_owned(),
            detail: detail.to_string(),
        }
    }
}

/// GETs `url` and decodes its JSON body.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, SdkError> {
    let response = http
        .get(url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| SdkError::unreachable(url, e))?;
    if !response.status().is_success() {
        return Err(SdkError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    response
        .json::<T>()
        .await
        .map_err(|e| SdkError::invalid(url, e))
}
