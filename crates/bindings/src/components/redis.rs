//! `redis`: Dapr's Redis output binding. Operations: `create` (SET the
//! request's data; with request metadata `ttlInSeconds`, an expiry), `get`
//! (GET; with `delete = "true"`, GETDEL; a missing key answers no data),
//! `delete` (DEL) and `increment` (INCR, with an optional `ttlInSeconds`).
//! Every call names its key in request metadata `key`. Component metadata:
//! Layotto's Redis keys (`redisHost`, `redisPassword`, …).

use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Metadata, Result, clip};
use layotto_redis::fred::prelude::*;
use layotto_redis::{RedisConn, RedisSettings};

use crate::{InvokeRequest, InvokeResponse, OutputBinding};

const OPERATIONS: &[&str] = &["create", "get", "delete", "increment"];

pub struct RedisBinding {
    name: String,
    conn: RedisConn,
}

impl RedisBinding {
    pub const TYPE: &'static str = "redis";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn OutputBinding>> {
        let settings: RedisSettings = ctx.settings()?;
        let conn = RedisConn::connect(&format!("binding '{}' (redis)", ctx.name), &settings, 1).await?;
        Ok(Arc::new(Self { name: ctx.name, conn }))
    }

    fn ttl(&self, metadata: &Metadata) -> Result<Option<i64>> {
        let Some(raw) = metadata.get("ttlInSeconds") else { return Ok(None) };
        match raw.trim().parse::<i64>() {
            Ok(ttl) if ttl > 0 => Ok(Some(ttl)),
            _ => Err(Error::invalid_argument(format!(
                "binding '{}': metadata 'ttlInSeconds' must be a whole number of seconds above zero, got '{}'",
                self.name,
                clip(raw)
            ))),
        }
    }
}

#[async_trait]
impl OutputBinding for RedisBinding {
    fn operations(&self) -> &'static [&'static str] {
        OPERATIONS
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse> {
        let key = req.metadata.get("key").filter(|k| !k.is_empty()).ok_or_else(|| {
            Error::invalid_argument(format!("binding '{}': metadata 'key' is required", self.name))
        })?;
        let client = self.conn.client()?;
        let fail = |e| self.conn.error(&format!("key '{}'", clip(key)), e);
        let mut data = Vec::new();
        match req.operation.as_str() {
            "create" => {
                let expire = self.ttl(&req.metadata)?.map(Expiration::EX);
                let _: () = client.set(key, req.data.as_slice(), expire, None, false).await.map_err(fail)?;
            }
            "get" => {
                let delete =
                    req.metadata.get("delete").is_some_and(|d| d.trim().eq_ignore_ascii_case("true"));
                let value: Option<Vec<u8>> =
                    if delete { client.getdel(key).await } else { client.get(key).await }.map_err(fail)?;
                data = value.unwrap_or_default();
            }
            "delete" => {
                let _: i64 = client.del(key).await.map_err(fail)?;
            }
            "increment" => {
                let ttl = self.ttl(&req.metadata)?;
                let _: i64 = client.incr(key).await.map_err(fail)?;
                if let Some(ttl) = ttl {
                    let _: bool = client.expire(key, ttl, None).await.map_err(fail)?;
                }
            }
            other => {
                return Err(Error::invalid_argument(format!(
                    "binding '{}': operation '{}' is not supported; use one of {}",
                    self.name,
                    clip(other),
                    OPERATIONS.join(", ")
                )));
            }
        }
        Ok(InvokeResponse { data, metadata: Metadata::new() })
    }

    async fn health(&self) -> layotto_core::Health {
        self.conn.health().await
    }
}
