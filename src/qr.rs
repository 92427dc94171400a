//! QR codes for pairing and escrow shares: rendered for the terminal (Unicode
//! half blocks), as PNG and SVG; decoded from a PNG or JPEG photo or
//! screenshot.
//!
//! A leaf beside the layers: bytes and text in and out, no I/O, depending
//! only on the image and QR crates. Not part of the protocol core (which
//! never needs pixels), used by the use cases and the front ends.

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

/// A QR code that could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The payload does not fit a QR code.
    #[error("cannot encode the QR code: {0}")]
    Encode(String),
    /// The file is not a readable PNG or JPEG image.
    #[error("cannot read the image: {0}")]
    Image(String),
    /// No QR code could be found or decoded in the image.
    #[error("no readable QR code found in the image")]
    NotFound,
}

fn code(payload: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::Encode(e.to_string()))
}

/// The QR code as Unicode half blocks, light modules drawn as spaces on a
/// dark terminal, with a quiet zone.
///
/// # Errors
/// [`QrError::Encode`] when the payload is too long.
pub fn render_terminal(payload: &str) -> Result<String, QrError> {
    Ok(code(payload)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// The QR code as a PNG image (8 pixels per module).
///
/// # Errors
/// [`QrError::Encode`] when the payload is too long.
pub fn render_png(payload: &str) -> Result<Vec<u8>, QrError> {
    let image = code(payload)?
        .render::<image::Luma<u8>>()
        .module_dimensions(8, 8)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| QrError::Encode(e.to_string()))?;
    Ok(out.into_inner())
}

/// The QR code as an SVG document.
///
/// # Errors
/// [`QrError::Encode`] when the payload is too long.
pub fn render_svg(payload: &str) -> Result<String, QrError> {
    Ok(code(payload)?
        .render::<svg::Color<'_>>()
        .min_dimensions(320, 320)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// Finds and decodes the first QR code in a PNG or JPEG image.
///
/// # Errors
/// [`QrError::Image`] for an unreadable file, [`QrError::NotFound`] when it
/// holds no decodable QR code.
pub fn decode_image(bytes: &[u8]) -> Result<String, QrError> {
    // A hostile or broken file may declare any dimensions: bound them, and
    // the memory decoding may take, before anything is allocated.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| QrError::Image(e.to_string()))?;
    reader.limits(limits);
    let image = reader.decode().map_err(|e| QrError::Image(e.to_string()))?;
    let luma = image.to_luma8();
    drop(image);
    let find = |luma: image::GrayImage| {
        let mut prepared = rqrr::PreparedImage::prepare(luma);
        prepared
            .detect_grids()
            .iter()
            .find_map(|grid| grid.decode().ok())
            .map(|(_, content)| content)
    };
    // A phone photo is large: look in a reduced copy first (fast), then at
    // full size if that found nothing.
    if luma.width().max(luma.height()) > SEARCH_SIDE {
        let small = image::imageops::thumbnail(
            &luma,
            luma.width() * SEARCH_SIDE / luma.width().max(luma.height()),
            luma.height() * SEARCH_SIDE / luma.width().max(luma.height()),
        );
        if let Some(found) = find(small) {
            return Ok(found);
        }
    }
    find(luma).ok_or(QrError::NotFound)
}

/// Larger images are refused (a 12-megapixel photo is 4000 × 3000).
const MAX_SIDE: u32 = 10_000;
/// At most this much memory for decoding one image.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
/// Images are searched for a QR code at this size (long side) first.
const SEARCH_SIDE: u32 = 1600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trips_through_the_decoder() {
        let payload =
            "medcrypt://pair/v2?s=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&e=2026-11&n=Dr%20Who";
        let png = render_png(payload).unwrap();
        assert_eq!(decode_image(&png).unwrap(), payload);
        assert!(render_terminal(payload).unwrap().contains('▀'));
        assert!(render_svg(payload).unwrap().starts_with("<?xml"));
        assert!(matches!(
            decode_image(b"not an image"),
            Err(QrError::Image(_))
        ));
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn an_image_declaring_huge_dimensions_is_refused_before_allocating() {
        // A PNG whose header declares 100,000 × 100,000 pixels (40 GB as
        // RGBA) and holds nothing else.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        assert!(matches!(decode_image(&png), Err(QrError::Image(_))));
    }

    #[test]
    fn jpeg_screenshot_at_another_scale_decodes() {
        let payload =
            "medcrypt://pair/v2?s=qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq&e=2027-01&n=Clinic";
        let qr = image::load_from_memory(&render_png(payload).unwrap())
            .unwrap()
            .to_luma8();
        let small = image::imageops::resize(
            &qr,
            qr.width() * 5 / 8,
            qr.height() * 5 / 8,
            image::imageops::FilterType::Triangle,
        );
        let mut screen = image::GrayImage::from_pixel(
            small.width() + 300,
            small.height() + 200,
            image::Luma([200]),
        );
        image::imageops::overlay(&mut screen, &small, 120, 80);
        let mut jpeg = std::io::Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 75)
            .encode_image(&screen)
            .unwrap();
        assert_eq!(decode_image(&jpeg.into_inner()).unwrap(), payload);

        let blank = image::GrayImage::from_pixel(100, 100, image::Luma([255]));
        let mut png = std::io::Cursor::new(Vec::new());
        blank.write_to(&mut png, image::ImageFormat::Png).unwrap();
        assert!(matches!(
            decode_image(&png.into_inner()),
            Err(QrError::NotFound)
        ));
    }
}
