//! The WhatsApp Cloud API transport (in progress): what the webhook
//! receives, checked and read without I/O. The HTTP server, the durable
//! queue and sending come next (issue 15); facts about the Cloud API are
//! in `../shared/WHATSAPP_CLOUD_API.md`.

pub mod webhook;
