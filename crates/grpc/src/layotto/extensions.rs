//! Layotto's extension services on the shared API layer:
//! `spec.proto.extension.v1.email.EmailService` and
//! `spec.proto.extension.v1.delay_queue.DelayQueue`. A component they cannot
//! find is Layotto's "component not found. kind: <api> , name: <name>".

use std::sync::Arc;

use layotto_email::{Attachment, Email};
use tonic::{Request, Response, Status};

use crate::api::pubsub::Publish;
use crate::api::{ApiError, Apis};
use crate::pb::delay_queue as dq;
use crate::pb::delay_queue::delay_queue_server::DelayQueue;
use crate::pb::email as pb;
use crate::pb::email::email_service_server::EmailService;
use crate::status::to_status;

type Reply<T> = Result<Response<T>, Status>;

/// Layotto's words for a missing extension component.
fn extension_wording(kind: &'static str, name: &str) -> impl Fn(ApiError) -> Status {
    let name = layotto_core::clip(name).into_owned();
    move |e| match e {
        ApiError::Lookup(_) => {
            Status::invalid_argument(format!("component not found. kind: {kind} , name: {name}"))
        }
        ApiError::Call(e) => to_status(e),
    }
}

#[derive(Clone)]
pub struct EmailServiceImpl {
    apis: Arc<Apis>,
}

impl EmailServiceImpl {
    pub fn new(apis: Arc<Apis>) -> Self {
        Self { apis }
    }
}

fn addresses(email: &mut Email, address: Option<pb::EmailAddress>) {
    let address = address.unwrap_or_default();
    email.from = address.from;
    email.to = address.to;
    email.cc = address.cc;
    email.bcc = address.bcc;
}

#[tonic::async_trait]
impl EmailService for EmailServiceImpl {
    async fn send_email_with_template(
        &self,
        request: Request<pb::SendEmailWithTemplateRequest>,
    ) -> Reply<pb::SendEmailWithTemplateResponse> {
        let req = request.into_inner();
        let template = req.template.unwrap_or_default();
        let mut email = Email { subject: req.subject, ..Default::default() };
        addresses(&mut email, req.address);
        let params = template.template_params.into_iter().collect();
        let request_id = self
            .apis
            .email
            .send_with_template(&req.component_name, &template.template_id, &params, email)
            .await
            .map_err(extension_wording("email", &req.component_name))?;
        Ok(Response::new(pb::SendEmailWithTemplateResponse { request_id }))
    }

    async fn send_email(&self, request: Request<pb::SendEmailRequest>) -> Reply<pb::SendEmailResponse> {
        let req = request.into_inner();
        let content = req.content.unwrap_or_default();
        let mut email = Email {
            subject: req.subject,
            text: content.text,
            html: content.html,
            attachments: req
                .attachments
                .into_iter()
                .map(|a| Attachment { filename: a.filename, content_type: a.content_type, data: a.data })
                .collect(),
            ..Default::default()
        };
        addresses(&mut email, req.address);
        let request_id = self
            .apis
            .email
            .send(&req.component_name, email)
            .await
            .map_err(extension_wording("email", &req.component_name))?;
        Ok(Response::new(pb::SendEmailResponse { request_id }))
    }
}

#[derive(Clone)]
pub struct DelayQueueService {
    apis: Arc<Apis>,
}

impl DelayQueueService {
    pub fn new(apis: Arc<Apis>) -> Self {
        Self { apis }
    }
}

#[tonic::async_trait]
impl DelayQueue for DelayQueueService {
    async fn publish_delay_message(
        &self,
        request: Request<dq::DelayMessageRequest>,
    ) -> Reply<dq::DelayMessageResponse> {
        let traceparent =
            request.metadata().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let req = request.into_inner();
        let name = req.component_name.clone();
        let publish = Publish {
            pubsub_name: req.component_name,
            topic: req.topic,
            data: req.data,
            data_content_type: req.data_content_type,
            metadata: req.metadata,
            traceparent,
        };
        let message_id = self
            .apis
            .pubsub
            .publish_delayed(publish, req.delay_in_seconds)
            .await
            .map_err(extension_wording("delay_queue", &name))?;
        Ok(Response::new(dq::DelayMessageResponse { message_id }))
    }
}
