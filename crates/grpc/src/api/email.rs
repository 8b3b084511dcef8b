//! The Email API: composed or rendered messages sent by the named component.

use std::collections::BTreeMap;
use std::sync::Arc;

use layotto_core::Error;
use layotto_email::{Email, EmailSender};

use super::{ApiResult, Limits, Named};

#[derive(Default)]
pub struct EmailApi {
    pub components: Named<Arc<dyn EmailSender>>,
    pub limits: Limits,
}

impl EmailApi {
    pub async fn send(&self, name: &str, email: Email) -> ApiResult<String> {
        let component = self.components.get(name)?;
        Ok(self.limits.deadline("email", name, || format!("email {name}"), component.send(email)).await?)
    }

    /// Renders template `template_id` of the component with `params` into
    /// the bodies of `email`, then sends it.
    pub async fn send_with_template(
        &self,
        name: &str,
        template_id: &str,
        params: &BTreeMap<String, String>,
        mut email: Email,
    ) -> ApiResult<String> {
        let component = self.components.get(name)?;
        let templates = component.templates().ok_or_else(|| {
            Error::invalid_argument(format!(
                "email {name}: the component has no templates (metadata templateDir)"
            ))
        })?;
        let rendered = templates.render(&format!("email {name}"), template_id, params)?;
        email.text = rendered.text;
        email.html = rendered.html;
        Ok(self.limits.deadline("email", name, || format!("email {name}"), component.send(email)).await?)
    }
}
