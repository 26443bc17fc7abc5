//! OCR with PP-OCRv4 through ONNX Runtime (the models from the pinned rapidocr_onnxruntime
//! wheel, the runtime from its own, fetched into the cache on the first run), on pages the test
//! draws itself with DejaVu Sans (Debian's fonts-dejavu-core): English words and digits at
//! several sizes come back within a character error rate bound, in reading order, also from
//! the page turned upside down; and the API's answer and its refusals of broken or oversized
//! images, from the engine's own request handler.

use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use carapace_infer::{Engine, EngineConfig, TextLine};
use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage};
use serde_json::Value;

use carapace_fakes::page::{Drawn, Typeface, page, page_in, sample_lines};

/// Error bounds, spaces counted. The engine reads the sample page without an error, upright and
/// upside down; rapidocr_onnxruntime reads its "Room 42" as "Ro0m 42" (the line padded to the
/// width of the longest in its batch: recognize.rs), and a box a pixel off read "lnvoice", so
/// one error in its 125 characters is allowed (another CPU's kernels round differently). A wrong
/// pre-processing (colour order, scaling, a crop off the line) reads far worse, and the words
/// run together without the spaces word_gaps.rs finds (rapidocr reads "Totaldue348.50EUR").
const MAX_LINE_ERROR_RATE: f64 = 0.2;
const MAX_PAGE_ERROR_RATE: f64 = 0.01;

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            // On a thread of its own: the API tests first get here inside tokio's runtime,
            // which may not block on another.
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    carapace_infer::fetch_onnx_runtime().await.unwrap();
                    carapace_infer::fetch_pinned("pp-ocrv4").await.unwrap();
                });
            })
            .join()
            .unwrap();
            Arc::new(
                Engine::new(EngineConfig {
                    models_dir: carapace_infer::models_dir().unwrap(),
                    threads: NonZeroUsize::new(2).unwrap(),
                    idle_unload: Duration::from_secs(600),
                    onnx_runtime: Default::default(),
                })
                .unwrap(),
            )
        })
        .clone()
}

/// Levenshtein distance over the characters, each run of white space one space, and the
/// reference's length.
fn character_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let characters = |text: &str| -> Vec<char> {
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .collect()
    };
    let (r, h) = (characters(reference), characters(hypothesis));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rc) in r.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, hc) in h.iter().enumerate() {
            let substitute = previous + usize::from(rc != hc);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    (row[h.len()], r.len())
}

fn character_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let (errors, length) = character_errors(reference, hypothesis);
    errors as f64 / length.max(1) as f64
}

/// Checks that `read` has each of `expected`, in that order, each line and the whole within
/// the error bounds.
fn assert_read(expected: &[&str], read: &[TextLine]) {
    let texts: Vec<&str> = read.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        read.len(),
        expected.len(),
        "read {texts:?}, drew {expected:?}"
    );
    let (mut errors, mut length) = (0, 0);
    for (want, got) in expected.iter().zip(read) {
        let (wrong, of) = character_errors(want, &got.text);
        let rate = wrong as f64 / of as f64;
        println!(
            "  {rate:.3} {want:?} -> {:?} ({:.3}) {:?}",
            got.text, got.confidence, got.corners
        );
        assert!(
            rate <= MAX_LINE_ERROR_RATE,
            "{want:?} read as {:?} (error rate {rate:.3}); all: {texts:?}",
            got.text
        );
        assert!((0.5..=1.0).contains(&got.confidence), "{got:?}");
        errors += wrong;
        length += of;
    }
    let rate = errors as f64 / length as f64;
    assert!(
        rate <= MAX_PAGE_ERROR_RATE,
        "{errors} errors in {length} characters: {texts:?}"
    );
}

#[test]
fn lines_of_words_and_digits_at_several_sizes_are_read_in_reading_order() {
    let drawn = sample_lines();
    let image = page(900, 360, &drawn);
    let read = engine().read_text("pp-ocrv4", &image).unwrap();
    // Top to bottom; the two-column row left to right.
    let expected: Vec<&str> = drawn.iter().map(|d| d.text).collect();
    assert_read(&expected, &read);
    // Read at its own width, not padded to the width of the longest line beside it, the short
    // line comes out as drawn (rapidocr: "Ro0m 42").
    assert!(read.iter().any(|line| line.text == "Room 42"), "{read:?}");
    assert_around_drawn(&read, &drawn, |corner| corner);
}

/// Checks that each line's box lies around the line drawn there, its corners taken back to the
/// upright page's pixels by `upright`: its first corner near the line's start, its middle
/// between the line's top and its size below, its text running along the top.
fn assert_around_drawn(read: &[TextLine], drawn: &[Drawn], upright: impl Fn([f32; 2]) -> [f32; 2]) {
    for (line, drawn) in read.iter().zip(drawn) {
        let [top_left, top_right, bottom_right, bottom_left] = line.corners.map(&upright);
        assert!((top_left[0] - drawn.x).abs() < 15.0, "{line:?}");
        let middle = (top_left[1] + bottom_left[1] + top_right[1] + bottom_right[1]) / 4.0;
        assert!(
            middle > drawn.y && middle < drawn.y + drawn.size * 1.2,
            "{line:?} is not around the line drawn at y {}",
            drawn.y
        );
        assert!(
            top_right[0] > top_left[0] && bottom_left[1] > top_left[1],
            "{line:?}"
        );
    }
}

#[test]
fn a_page_photographed_sideways_is_read_in_its_own_reading_order() {
    let drawn = sample_lines();
    let upright = page(900, 360, &drawn);
    let expected: Vec<&str> = drawn.iter().map(|d| d.text).collect();
    // Turned a quarter clockwise (the page is 360 x 900 now), then a quarter the other way.
    // Read as the lines lie, the columns of text would come right to left (or left to right),
    // "Room 42" after the line below it.
    let clockwise = image::imageops::rotate90(&upright);
    let read = engine().read_text("pp-ocrv4", &clockwise).unwrap();
    assert_read(&expected, &read);
    // The boxes are in the sideways picture's pixels: a point (x, y) of the upright page is
    // at (360 - y, x) there.
    assert_around_drawn(&read, &drawn, |[x, y]| [y, 360.0 - x]);
    let counter_clockwise = image::imageops::rotate270(&upright);
    let read = engine().read_text("pp-ocrv4", &counter_clockwise).unwrap();
    assert_read(&expected, &read);
    assert_around_drawn(&read, &drawn, |[x, y]| [900.0 - y, x]);
}

#[test]
fn a_page_upside_down_is_read_the_right_way_up_in_its_own_reading_order() {
    let drawn = sample_lines();
    let image = image::imageops::rotate180(&page(900, 360, &drawn));
    let read = engine().read_text("pp-ocrv4", &image).unwrap();
    // Most of its lines had to be turned round, so the page lies upside down: its lines come
    // in its own reading order (in the order they lie, the last line would come first), their
    // boxes in the picture's pixels.
    let expected: Vec<&str> = drawn.iter().map(|d| d.text).collect();
    assert_read(&expected, &read);
    assert_around_drawn(&read, &drawn, |[x, y]| [900.0 - x, 360.0 - y]);
}

#[test]
fn a_page_of_small_print_upside_down_comes_out_in_its_reading_order() {
    // Twelve lines of 16-pixel print, the size at which a classifier of the whole picture
    // (scaled to 256 pixels) took an upright page for one upside down (page_turn.rs).
    const LINES: [&str; 12] = [
        "Dear neighbour, the water will be off",
        "on Tuesday from nine until noon while",
        "the pipes under the street are mended.",
        "Please keep a jug of water aside and",
        "do not run the washing machine then.",
        "The bins go out on Wednesday instead",
        "of Tuesday this week, before 7 am.",
        "Parking on the north side is closed",
        "for the works; use the south side.",
        "Questions go to the office at 0176 55",
        "or to the caretaker in flat 3, who is",
        "there every weekday afternoon. Thanks!",
    ];
    let drawn: Vec<Drawn> = LINES
        .iter()
        .enumerate()
        .map(|(i, text)| Drawn {
            text,
            size: 16.0,
            x: 30.0,
            y: 20.0 + 24.0 * i as f32,
        })
        .collect();
    let image = image::imageops::rotate180(&page(420, 320, &drawn));
    let read = engine().read_text("pp-ocrv4", &image).unwrap();
    let texts: Vec<&str> = read.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(read.len(), LINES.len(), "{texts:?}");
    let (mut errors, mut length) = (0, 0);
    for (want, got) in LINES.iter().zip(&texts) {
        let (wrong, of) = character_errors(want, got);
        assert!(wrong * 5 <= of, "{want:?} read as {got:?}, in {texts:?}");
        errors += wrong;
        length += of;
    }
    assert!(
        errors * 50 <= length,
        "{errors} errors in {length} characters: {texts:?}"
    );
}

#[test]
fn a_line_upside_down_on_an_upright_page_is_read_the_right_way_round() {
    // The page's last line (drawn at y 300, 22 pixels high) turned round where it lies: the
    // page is upright, so the line's own classifier turns it.
    let drawn = sample_lines();
    let mut image = page(900, 360, &drawn);
    let band = image::imageops::crop_imm(&image, 0, 292, 900, 44).to_image();
    image::imageops::replace(&mut image, &image::imageops::rotate180(&band), 0, 292);
    let read = engine().read_text("pp-ocrv4", &image).unwrap();
    let expected: Vec<&str> = drawn.iter().map(|d| d.text).collect();
    assert_read(&expected, &read);
}

#[test]
fn a_blank_page_has_no_text() {
    let image = RgbImage::from_pixel(640, 480, Rgb([255, 255, 255]));
    assert!(engine().read_text("pp-ocrv4", &image).unwrap().is_empty());
}

fn png(image: &DynamicImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// POSTs a multipart/form-data form of `parts` (name, file name, bytes) to /v1/images/ocr
/// through the engine's request handler; returns the status and the JSON answer.
async fn ocr(parts: &[(&str, Option<&str>, &[u8])]) -> (u16, Value) {
    const BOUNDARY: &str = "carapace-ocr-test-boundary";
    let mut body = Vec::new();
    for (name, file_name, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let file = file_name
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let request = hyper::Request::post("/v1/images/ocr")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Bytes::from(body))
        .unwrap();
    let response = carapace_infer::api::handle(engine(), request).await;
    let status = response.status().as_u16();
    use http_body_util::BodyExt as _;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn the_api_answers_the_text_and_each_line_with_its_confidence_and_box() {
    let drawn = &sample_lines()[..1];
    let image = page(600, 120, drawn);
    // As a JPEG, without a model: the default one reads it.
    let mut jpeg = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut jpeg, ImageFormat::Jpeg)
        .unwrap();
    let (status, body) = ocr(&[("file", Some("page.jpg"), jpeg.get_ref())]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "pp-ocrv4");
    let lines = body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{body}");
    let text = body["text"].as_str().unwrap();
    assert_eq!(lines[0]["text"].as_str(), Some(text));
    assert!(
        character_error_rate(drawn[0].text, text) <= MAX_LINE_ERROR_RATE,
        "{body}"
    );
    let confidence = lines[0]["confidence"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&confidence), "{body}");
    let corners: Vec<[f64; 2]> = serde_json::from_value(lines[0]["box"].clone()).unwrap();
    assert_eq!(corners.len(), 4);
    assert!(
        corners
            .iter()
            .all(|[x, y]| (0.0..=600.0).contains(x) && (0.0..=120.0).contains(y))
    );

    // Two lines: the text has one per line.
    let two = page(
        600,
        160,
        &[
            Drawn {
                text: "first line 1",
                size: 30.0,
                x: 30.0,
                y: 20.0,
            },
            Drawn {
                text: "second line 2",
                size: 30.0,
                x: 30.0,
                y: 90.0,
            },
        ],
    );
    let bytes = png(&DynamicImage::ImageRgb8(two));
    let (status, body) = ocr(&[
        ("model", None, b"pp-ocrv4"),
        ("file", Some("two.png"), &bytes),
    ])
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body["text"].as_str().unwrap();
    assert_eq!(text.lines().count(), 2, "{body}");
    assert!(
        character_error_rate("first line 1\nsecond line 2", text) <= MAX_LINE_ERROR_RATE,
        "{body}"
    );
}

#[tokio::test]
async fn broken_or_oversized_images_are_refused_saying_what_was_wrong_and_the_engine_goes_on() {
    let good = png(&DynamicImage::ImageRgb8(page(900, 360, &sample_lines())));

    // A PNG cut in half.
    let (status, body) = ocr(&[("file", Some("cut.png"), &good[..good.len() / 2])]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).starts_with("the image is not usable"),
        "{body}"
    );
    assert!(message(&body).contains("damaged"), "{body}");

    // Not an image at all.
    let (status, body) = ocr(&[("file", Some("notes.txt"), b"shopping: milk, eggs")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).contains("neither a PNG nor a JPEG"),
        "{body}"
    );

    // A real PNG of 8000 x 6000 pixels (48 megapixels, a few kilobytes compressed).
    let large = png(&DynamicImage::ImageLuma8(GrayImage::new(8000, 6000)));
    assert!(large.len() < 1_000_000);
    let (status, body) = ocr(&[("file", Some("large.png"), &large)]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).starts_with("the image is 8000 x 6000 pixels, over the 40000000"),
        "{body}"
    );

    // A decompression bomb: a 1 x 1 PNG whose header claims 60,000 x 60,000 pixels.
    let bomb = carapace_fakes::page::png_claiming(60_000, 60_000);
    let (status, body) = ocr(&[("file", Some("bomb.png"), &bomb)]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).starts_with("the image is 60000 x 60000 pixels"),
        "{body}"
    );

    // No file; a body that is not a form; a model that does not read text.
    let (status, body) = ocr(&[("model", None, b"pp-ocrv4")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).starts_with("the form has no `file` part"),
        "{body}"
    );
    let request = hyper::Request::post("/v1/images/ocr")
        .header("content-type", "image/png")
        .body(Bytes::from(good.clone()))
        .unwrap();
    let response = carapace_infer::api::handle(engine(), request).await;
    assert_eq!(response.status().as_u16(), 400);
    let (status, body) = ocr(&[("model", None, b"silero-vad"), ("file", None, &good)]).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("not Ocr"), "{body}");

    // And the engine still reads.
    let (status, body) = ocr(&[("file", Some("good.png"), &good)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["lines"].as_array().unwrap().len(),
        sample_lines().len(),
        "{body}"
    );
}

/// Lines whose words are hard to tell apart by their gaps: narrow letters side by side
/// ("illicit", "1111"), wide ones ("WAVE", "mum"), short words and punctuation.
fn spacing_lines() -> Vec<Drawn> {
    let at = |text, size, y| Drawn {
        text,
        size,
        x: 30.0,
        y,
    };
    vec![
        at("I will fill it in a minute", 30.0, 20.0),
        at("WAVE AT YOUR MUM, Tom", 28.0, 80.0),
        at("Pay 1111 by 12 July, or call 7 at 9", 24.0, 140.0),
        at("an illicit list of 3 little lilies", 26.0, 200.0),
        at("(see p. 4) and \"quoted\" words; done!", 24.0, 260.0),
    ]
}

#[test]
fn words_keep_their_spaces_in_sans_bold_serif_and_mono_dark_on_light_and_light_on_dark() {
    // Each line's words as drawn, by length: a letter misread ("0r" for "or") keeps them, a
    // space missed or added does not.
    let lengths =
        |text: &str| -> Vec<usize> { text.split_whitespace().map(|w| w.chars().count()).collect() };
    let drawn = spacing_lines();
    let (mut lines, mut wrong) = (0, Vec::new());
    for typeface in [
        Typeface::Sans,
        Typeface::SansBold,
        Typeface::Serif,
        Typeface::Mono,
    ] {
        let mut image = page_in(typeface, 900, 320, &drawn);
        for light_on_dark in [false, true] {
            if light_on_dark {
                image::imageops::invert(&mut image);
            }
            let read = engine().read_text("pp-ocrv4", &image).unwrap();
            assert_eq!(read.len(), drawn.len(), "{typeface:?}: {read:?}");
            for (want, got) in drawn.iter().zip(&read) {
                println!(
                    "  {typeface:?} {light_on_dark}: {:?} -> {:?}",
                    want.text, got.text
                );
                lines += 1;
                if lengths(want.text) != lengths(&got.text) {
                    wrong.push(format!("{typeface:?}: {:?} read {:?}", want.text, got.text));
                }
                // The recognizer's full-width commas and brackets come back as ASCII.
                assert!(got.text.is_ascii(), "{typeface:?}: {:?}", got.text);
            }
        }
    }
    // 40 lines; measured: one space missed ("12July", light on dark in Sans).
    assert!(
        wrong.len() <= 2,
        "{} of {lines} lines: {wrong:#?}",
        wrong.len()
    );
}
