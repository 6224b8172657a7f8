//! `kubeadm token create|list|delete`: bootstrap tokens managed through the API with the
//! admin kubeconfig, printed as upstream prints them.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams};

use crate::bootstrap;
use crate::token::{self, Token};

/// Creates a token; with `print_join_command`, prints the whole join command instead.
pub async fn create(
    client: &kube::Client,
    token: Option<Token>,
    ttl: Duration,
    description: &str,
    print_join_command: bool,
) -> anyhow::Result<()> {
    let token = token.unwrap_or_else(Token::generate);
    bootstrap::create_token(client, &token, ttl, description).await?;
    if !print_join_command {
        println!("{token}");
        return Ok(());
    }
    let info =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "kube-public")
            .get("cluster-info")
            .await?;
    let kubeconfig = info
        .data
        .and_then(|mut d| d.remove("kubeconfig"))
        .unwrap_or_default();
    let doc: serde_yaml::Value = serde_yaml::from_str(&kubeconfig)?;
    let cluster = &doc["clusters"][0]["cluster"];
    let server = cluster["server"].as_str().unwrap_or_default();
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.decode(
        cluster["certificate-authority-data"]
            .as_str()
            .unwrap_or_default(),
    )?;
    let hash = token::ca_cert_hash(&String::from_utf8(ca)?)?;
    println!(
        "{}",
        crate::init::join_command(server, &token, &hash).replace("\\\n\t", "")
    );
    Ok(())
}

/// Prints the tokens as upstream's table.
pub async fn list(client: &kube::Client) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let list = secrets
        .list(&ListParams::default().fields(&format!("type={}", token::SECRET_TYPE)))
        .await?;
    println!(
        "{:<24}{:<8}{:<22}{:<40}{:<48}EXTRA GROUPS",
        "TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION"
    );
    let now = chrono::Utc::now();
    for s in &list.items {
        let get = |k: &str| common::bootstraptoken::data(s, k).unwrap_or_default();
        let (id, secret) = (get("token-id"), get("token-secret"));
        if id.is_empty() {
            continue;
        }
        let expiration = get("expiration");
        let (ttl, expires) = match chrono::DateTime::parse_from_rfc3339(&expiration) {
            Ok(t) => {
                let left = t.signed_duration_since(now);
                let ttl = if left.num_hours() >= 1 {
                    format!("{}h", left.num_hours())
                } else {
                    format!("{}m", left.num_minutes().max(0))
                };
                (ttl, expiration.clone())
            }
            Err(_) => ("<forever>".into(), "<never>".into()),
        };
        let usages: Vec<&str> = ["authentication", "signing"]
            .into_iter()
            .filter(|u| get(&format!("usage-bootstrap-{u}")) == "true")
            .collect();
        println!(
            "{:<24}{:<8}{:<22}{:<40}{:<48}{}",
            format!("{id}.{secret}"),
            ttl,
            expires,
            usages.join(","),
            get("description"),
            get("auth-extra-groups")
        );
    }
    Ok(())
}

/// Deletes tokens by id or whole token.
pub async fn delete(client: &kube::Client, tokens: &[String]) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    for t in tokens {
        let id = t.split('.').next().unwrap_or(t);
        secrets
            .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
            .await?;
        println!("bootstrap token {id:?} deleted");
    }
    Ok(())
}
