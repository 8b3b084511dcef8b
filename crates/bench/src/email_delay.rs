//! Email and delay-queue rows: SendEmail through the runtime against lettre
//! sending straight to the same SMTP server, and delayed messages scheduled
//! through DelayQueue (the rate) with their lateness at a subscriber.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use layotto_grpc::pb::delay_queue as dq;
use layotto_grpc::pb::delay_queue::delay_queue_client::DelayQueueClient;
use layotto_grpc::pb::email as mail;
use layotto_grpc::pb::email::email_service_client::EmailServiceClient;
use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use parking_lot::Mutex;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::{Load, Report, drive, histogram};

async fn channels(target: &str, n: usize) -> Result<Vec<Channel>> {
    let endpoint =
        Endpoint::from_shared(target.to_owned())?.tcp_nodelay(true).timeout(Duration::from_secs(10));
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        channels.push(endpoint.connect().await.with_context(|| format!("cannot connect to {target}"))?);
    }
    Ok(channels)
}

/// SendEmail through the runtime's `component`.
pub async fn email_load(target: &str, component: &str, load: &Load) -> Result<Report> {
    let clients: Vec<EmailServiceClient<Channel>> =
        channels(target, load.connections).await?.into_iter().map(EmailServiceClient::new).collect();
    let component = Arc::new(component.to_owned());
    drive(load, clients, Arc::new(vec!["bench".to_owned()]), move |mut client, _| {
        let component = component.clone();
        async move {
            let request = mail::SendEmailRequest {
                component_name: (*component).clone(),
                subject: "bench".into(),
                content: Some(mail::Content { text: "a short message".into(), html: String::new() }),
                address: Some(mail::EmailAddress {
                    from: "bench@example.com".into(),
                    to: vec!["to@example.com".into()],
                    ..Default::default()
                }),
                ..Default::default()
            };
            client.send_email(request).await.map(drop).map_err(|e| e.to_string())
        }
    })
    .await
}

/// The same message sent by lettre straight to the SMTP server.
pub async fn email_direct(host: &str, port: u16, load: &Load) -> Result<Report> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(4))
        .build();
    drive(load, vec![transport], Arc::new(vec!["bench".to_owned()]), |transport, _| async move {
        let message = Message::builder()
            .from("bench@example.com".parse().map_err(|e| format!("{e}"))?)
            .to("to@example.com".parse().map_err(|e| format!("{e}"))?)
            .subject("bench")
            .body("a short message".to_owned())
            .map_err(|e| e.to_string())?;
        transport.send(message).await.map(drop).map_err(|e| e.to_string())
    })
    .await
}

/// Schedules `count` messages `delay` ahead through DelayQueue with
/// `concurrency` tasks; the rate they were scheduled at, and how late each
/// reached a SubscribeTopicEvents stream after its time.
pub async fn delay_load(
    target: &str,
    pubsub: &str,
    count: usize,
    delay: u64,
    concurrency: usize,
) -> Result<Report> {
    use pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
    use pb::subscribe_topic_events_response::SubscribeTopicEventsResponseType as Out;
    if count == 0 || concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let channel = channels(target, 1).await?.remove(0);
    let topic = format!("bench-delay-{}", std::process::id());
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tx.send(pb::SubscribeTopicEventsRequest {
        subscribe_topic_events_request_type: Some(In::InitialRequest(
            pb::SubscribeTopicEventsRequestInitial {
                pubsub_name: pubsub.to_owned(),
                topic: topic.clone(),
                ..Default::default()
            },
        )),
    })
    .await?;
    let mut events = RuntimeClient::new(channel.clone())
        .subscribe_topic_events(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let arrived: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let record = arrived.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = events.next().await {
            if let Some(Out::EventMessage(event)) = message.subscribe_topic_events_response_type {
                if let Ok(n) = String::from_utf8_lossy(&event.data).parse::<usize>() {
                    record.lock().entry(n).or_insert_with(Instant::now);
                }
                let processed = In::EventProcessed(pb::SubscribeTopicEventsRequestProcessed {
                    id: event.id,
                    status: Some(pb::TopicEventResponse { status: 0 }),
                });
                let _ = tx
                    .send(pb::SubscribeTopicEventsRequest {
                        subscribe_topic_events_request_type: Some(processed),
                    })
                    .await;
            }
        }
    });

    let scheduled: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; count]));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (mut client, scheduled, next, pubsub, topic) = (
            DelayQueueClient::new(channel.clone()),
            scheduled.clone(),
            next.clone(),
            pubsub.to_owned(),
            topic.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= count {
                    return Ok::<_, anyhow::Error>(());
                }
                let before = Instant::now();
                client
                    .publish_delay_message(dq::DelayMessageRequest {
                        component_name: pubsub.clone(),
                        topic: topic.clone(),
                        data: n.to_string().into_bytes(),
                        data_content_type: "text/plain".into(),
                        delay_in_seconds: delay as i32,
                        metadata: Default::default(),
                    })
                    .await?;
                scheduled.lock()[n] = Some(before);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(delay + 60);
    while arrived.lock().len() < count {
        if Instant::now() > deadline {
            bail!("only {} of {count} delayed messages arrived", arrived.lock().len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut hist = histogram()?;
    let (arrived, scheduled) = (arrived.lock(), scheduled.lock());
    let mut early = 0u64;
    for (n, at) in arrived.iter() {
        let Some(Some(before)) = scheduled.get(*n) else { continue };
        let due = *before + Duration::from_secs(delay);
        if *at < due {
            early += 1;
        }
        hist.saturating_record(at.saturating_duration_since(due).as_nanos().max(1) as u64);
    }
    Ok(Report {
        ops_per_sec: rate,
        p50_us: hist.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
        ops: hist.len(),
        errors: early,
    })
}
