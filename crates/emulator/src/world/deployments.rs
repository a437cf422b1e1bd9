//! ARM deployments: create or update (same- and cross-tenant), read, delete, operations.

use super::*;

impl World {
    /// Creates or updates a deployment, enforcing the cross-subscription and cross-tenant
    /// rules. Returns (created, body, operation id).
    pub fn put_deployment(
        &mut self,
        account: &str,
        name: &str,
        body: &Value,
        auxiliary: &[Option<String>],
    ) -> Result<(bool, Value, String), Refusal> {
        let now = self.now();
        let ready = now + Self::ms(self.timings.deployment_ms);
        let max_ft = self.timings.max_ft_deployments;
        let dest = self.accounts.get(account).ok_or_else(|| {
            refuse(
                404,
                "ResourceNotFound",
                format!("account {account} does not exist"),
            )
        })?;
        let dest_tenant = dest.config.tenant.clone();
        let model = body
            .pointer("/properties/model")
            .cloned()
            .unwrap_or(Value::Null);
        let name_of = |k: &str| model.get(k).and_then(Value::as_str).map(str::to_owned);
        let model_name = name_of("name").ok_or_else(|| {
            refuse(
                400,
                "InvalidResourceProperties",
                "properties.model.name is required",
            )
        })?;
        let (source, source_account) = (name_of("source"), name_of("sourceAccount"));
        let sku_name = body
            .pointer("/sku/name")
            .and_then(Value::as_str)
            .unwrap_or("Standard")
            .to_owned();
        if ![sku::STANDARD, sku::GLOBAL_STANDARD, sku::DEVELOPER]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&sku_name))
        {
            return Err(refuse(
                400,
                "InvalidSkuName",
                format!("sku {sku_name} is not available for fine-tuned models here"),
            ));
        }
        let capacity = body
            .pointer("/sku/capacity")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1) as u32;
        let mut serves = model_name.clone();
        if model_name.contains(".ft-") || model_name.starts_with("ftchkpt-") {
            let owner_id = source.clone().or_else(|| source_account.clone());
            let owner = match &owner_id {
                Some(id) => self
                    .accounts
                    .values()
                    .find(|a| {
                        a.config
                            .resource_id()
                            .eq_ignore_ascii_case(id.trim_end_matches('/'))
                    })
                    .ok_or_else(|| {
                        refuse(
                            400,
                            "InvalidResourceProperties",
                            format!("source account {id} does not exist"),
                        )
                    })?,
                None => self
                    .accounts
                    .get(account)
                    .ok_or_else(|| refuse(404, "ResourceNotFound", "no account"))?,
            };
            // A checkpoint deploys by its `ftchkpt-…` id and serves as that checkpoint.
            if model_name.starts_with("ftchkpt-") {
                serves = owner
                    .jobs
                    .iter()
                    .flat_map(|j| &j.checkpoints)
                    .find(|c| c["id"] == model_name.as_str())
                    .and_then(|c| c["fine_tuned_model_checkpoint"].as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        refuse(
                            400,
                            "DeploymentModelNotFound",
                            format!(
                                "checkpoint {model_name} does not exist in account {}",
                                owner.config.name
                            ),
                        )
                    })?;
            }
            if !owner.models.contains_key(&serves) {
                return Err(refuse(
                    400,
                    "DeploymentModelNotFound",
                    format!(
                        "model {model_name} does not exist in account {}",
                        owner.config.name
                    ),
                ));
            }
            // Azure offers fine-tuned deployments only where its availability table says.
            let region = self
                .accounts
                .get(account)
                .map(|a| a.config.region.clone())
                .unwrap_or_default();
            if let Err(e) = self.availability.check(&serves, &sku_name, &region) {
                return Err(refuse(400, "InvalidResourceProperties", e.to_string()));
            }
            if owner.config.tenant != dest_tenant {
                if source.is_some() {
                    return Err(refuse(
                        403,
                        "LinkedAuthorizationFailed",
                        "the source is in another tenant: use sourceAccount with an auxiliary token",
                    ));
                }
                if auxiliary.is_empty() {
                    return Err(refuse(
                        401,
                        "LinkedAuthorizationFailed",
                        "cross-tenant deployment needs x-ms-authorization-auxiliary with a token of the source tenant",
                    ));
                }
                // A token whose tenant is known must be the source's (an opaque test token
                // stands for any tenant).
                let owner_tenant = &owner.config.tenant;
                if auxiliary
                    .iter()
                    .all(|t| t.as_ref().is_some_and(|t| t != owner_tenant))
                {
                    return Err(refuse(
                        401,
                        "InvalidAuthenticationTokenTenant",
                        format!(
                            "the auxiliary token is from the wrong issuer: it must be a token of the source account's tenant {owner_tenant}"
                        ),
                    ));
                }
            }
        }
        if !serves.contains(".ft-") && aoai_facts::tokens::model_spec(&serves).is_none() {
            return Err(refuse(
                400,
                "DeploymentModelNotSupported",
                format!("The model '{serves}' is not supported for deployment in this account."),
            ));
        }
        let a = self.account_mut(account)?;
        let ft_others = a
            .deployments
            .values()
            .filter(|d| d.is_fine_tuned() && d.name != name)
            .count();
        if serves.contains(".ft-") && ft_others >= max_ft {
            return Err(refuse(
                400,
                "QuotaExceeded",
                "an account holds at most 5 fine-tuned deployments",
            ));
        }
        if a.deployments
            .get(name)
            .is_some_and(|d| d.deleting_until.is_some())
        {
            return Err(refuse(
                409,
                "RequestConflict",
                format!(
                    "Another operation is being performed on the parent resource 'deployments/{name}': it is being deleted. Please wait for it to complete."
                ),
            ));
        }
        let created = !a.deployments.contains_key(name);
        let previous_use = a.deployments.get(name).and_then(|d| d.last_used);
        a.deployments.insert(
            name.to_owned(),
            Deployment {
                name: name.to_owned(),
                model: model_name,
                serves,
                version: name_of("version").unwrap_or_else(|| "1".into()),
                sku: sku_name,
                capacity,
                tags: body.get("tags").cloned().unwrap_or(json!({})),
                source,
                source_account,
                created: now,
                ready_at: ready,
                last_used: previous_use,
                window: VecDeque::new(),
                deleting_until: None,
            },
        );
        let op = hex_id();
        self.operations
            .insert(op.clone(), (account.to_owned(), name.to_owned()));
        Ok((
            created,
            self.deployment_json(account, name).unwrap_or(Value::Null),
            op,
        ))
    }

    /// A deployment's ARM JSON.
    pub fn deployment_json(&self, account: &str, name: &str) -> Option<Value> {
        let a = self.accounts.get(account)?;
        let d = a.deployments.get(name)?;
        let mut model = json!({"format": "OpenAI", "name": d.model, "version": d.version});
        if let Some(s) = &d.source {
            model["source"] = json!(s);
        }
        if let Some(s) = &d.source_account {
            model["sourceAccount"] = json!(s);
        }
        Some(json!({
            "id": format!("{}/deployments/{}", a.config.resource_id(), d.name),
            "type": "Microsoft.CognitiveServices/accounts/deployments",
            "name": d.name,
            "sku": {"name": d.sku, "capacity": d.capacity},
            "tags": d.tags,
            "properties": {"model": model, "provisioningState": d.state(self.now()),
                           "rateLimits": [{"key": "request", "renewalPeriod": 60, "count": d.capacity * 6},
                                          {"key": "token", "renewalPeriod": 60, "count": d.capacity * 1000}]},
            "systemData": {"createdAt": d.created.to_rfc3339(), "lastUsedAt": d.last_used.map(|t| t.to_rfc3339())},
        }))
    }

    /// An ARM operation's status.
    pub fn operation_json(&self, id: &str) -> Option<Value> {
        let (account, name) = self.operations.get(id)?;
        let d = self
            .accounts
            .get(account)
            .and_then(|a| a.deployments.get(name));
        let status = if id.starts_with("del-") {
            match d {
                Some(d) if d.deleting_until.is_some() => "InProgress",
                _ => "Succeeded",
            }
        } else {
            match d {
                Some(d) if d.state(self.now()) == "Succeeded" => "Succeeded",
                Some(d) if d.deleting_until.is_some() => "Canceled",
                Some(_) => "InProgress",
                None => "Canceled",
            }
        };
        Some(json!({"id": id, "name": id, "status": status}))
    }

    /// Whole seconds until an operation is expected to finish, for `Retry-After`.
    pub fn operation_wait(&self, id: &str) -> u64 {
        let Some((account, name)) = self.operations.get(id) else {
            return 0;
        };
        let now = self.now();
        self.accounts
            .get(account)
            .and_then(|a| a.deployments.get(name))
            .and_then(|d| {
                d.deleting_until
                    .or((d.ready_at > now).then_some(d.ready_at))
            })
            .map_or(0, |t| u64::try_from((t - now).num_seconds()).unwrap_or(0))
    }

    /// Starts deleting a deployment: it answers nothing and reads `Deleting` until the
    /// deletion completes (a same-name PUT meanwhile is a conflict). `None` when it does not
    /// exist; else the operation's id.
    pub fn delete_deployment(&mut self, account: &str, name: &str) -> Option<String> {
        let until = self.now() + Self::ms(self.timings.deployment_ms);
        let d = self.accounts.get_mut(account)?.deployments.get_mut(name)?;
        let id = format!("del-{account}-{name}");
        if d.deleting_until.is_none() {
            d.deleting_until = Some(until);
        }
        self.operations
            .insert(id.clone(), (account.to_owned(), name.to_owned()));
        Some(id)
    }
}
