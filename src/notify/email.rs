//! Email through SMTP with lettre (tokio, rustls): plain, STARTTLS (required)
//! or implicit TLS, optional AUTH, several recipients. One connection per
//! message. The subject is the notification title, the body its text.

use super::config::{EmailConfig, SmtpTls};
use super::{AttemptError, Notification};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::str::FromStr;
use std::time::Duration;

pub(crate) struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `host:port`, for messages.
    server: String,
}

impl EmailSender {
    pub(crate) fn new(cfg: &EmailConfig, timeout: Duration) -> Result<EmailSender, String> {
        let server = format!("{}:{}", cfg.smtp_host, cfg.smtp_port);
        let tls = match cfg.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls | SmtpTls::Implicit => {
                let params = TlsParameters::new(cfg.smtp_host.clone())
                    .map_err(|e| format!("email via {server}: cannot set up TLS: {e}"))?;
                if cfg.tls == SmtpTls::Starttls {
                    Tls::Required(params)
                } else {
                    Tls::Wrapper(params)
                }
            }
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.smtp_host.as_str())
                .port(cfg.smtp_port)
                .tls(tls)
                .timeout(Some(timeout));
        if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
        }
        let from = Mailbox::from_str(&cfg.from)
            .map_err(|e| format!("email via {server}: bad from address {:?}: {e}", cfg.from))?;
        let to = cfg
            .to
            .iter()
            .map(|t| {
                Mailbox::from_str(t)
                    .map_err(|e| format!("email via {server}: bad recipient {t:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EmailSender {
            transport: builder.build(),
            from,
            to,
            server,
        })
    }

    /// The message for a notification (exposed for tests).
    pub(crate) fn message(&self, n: &Notification) -> Result<Message, String> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(n.title.clone())
            .message_id(None)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.body(n.body.clone())
            .map_err(|e| format!("email via {}: cannot build the message: {e}", self.server))
    }

    pub(crate) async fn send(&self, n: &Notification) -> Result<(), AttemptError> {
        let msg = self.message(n).map_err(AttemptError::permanent)?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = format!("email via {}: {e}", self.server);
                if e.is_permanent() {
                    Err(AttemptError::permanent(message))
                } else {
                    Err(AttemptError::transient(message))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn cfg(tls: SmtpTls) -> EmailConfig {
        EmailConfig {
            smtp_host: "smtp.example.com".into(),
            smtp_port: 2525,
            tls,
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            from: "Raftinel <raftinel@example.com>".into(),
            to: vec!["a@example.com".into(), "B <b@example.com>".into()],
        }
    }

    #[test]
    fn builds_every_tls_mode_and_a_message() {
        for tls in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Implicit] {
            let s = EmailSender::new(&cfg(tls), Duration::from_secs(1)).unwrap();
            let n = Notification::test("mail", 0);
            let raw = String::from_utf8(s.message(&n).unwrap().formatted()).unwrap();
            assert!(
                raw.contains("To: a@example.com, B <b@example.com>"),
                "{raw}"
            );
            assert!(
                raw.contains("Subject: [raftinel] test notification"),
                "{raw}"
            );
        }
    }
}
