//! Documents read from text files: a plain text file is one document; a JSON Lines file
//! (`.jsonl`) holds one JSON object per line, its document the string in a named field
//! (`text` by default; blank lines are skipped); an Apache Parquet file (`.parquet`)
//! holds one document per row, the string in a named top-level column (null rows are
//! skipped; pages uncompressed, Snappy-compressed as pandas and pyarrow write them by
//! default, or gzip-compressed).
//!
//! Every reader hands the documents over one at a time, in file order, and fails with
//! the file, the line or row, and what is wrong: a line that is not JSON, an object
//! without the field, a field that is not a string, a Parquet file without the column,
//! text that is not UTF-8, a file with no document at all.

use std::path::Path;

/// How a file holds its documents, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The whole file is one document.
    Plain,
    JsonLines,
    Parquet,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Format::JsonLines,
            Some("parquet") => Format::Parquet,
            _ => Format::Plain,
        }
    }
}

/// Calls `each` with every document of `path` (the text of `field` for JSON Lines and
/// Parquet); returns how many there were. A file without any document is an error.
pub fn read(path: &Path, field: &str, each: &mut dyn FnMut(&str) -> Result<(), String>) -> Result<usize, String> {
    let count = match Format::of(path) {
        Format::Plain => {
            let text = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            let text = String::from_utf8(text).map_err(|e| {
                let at = e.utf8_error().valid_up_to();
                format!("`{}` is not UTF-8 text: the byte at offset {at} is not valid UTF-8", path.display())
            })?;
            if text.is_empty() { 0 } else { each(&text).map(|()| 1)? }
        }
        Format::JsonLines => json_lines(path, field, each)?,
        Format::Parquet => parquet(path, field, each)?,
    };
    if count == 0 {
        return Err(format!("`{}` holds no documents", path.display()));
    }
    Ok(count)
}

fn json_lines(path: &Path, field: &str, each: &mut dyn FnMut(&str) -> Result<(), String>) -> Result<usize, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    json_lines_from(std::io::BufReader::new(file), &path.display().to_string(), field, each)
}

/// [`read`]'s JSON Lines reader on any reader (`origin` names it in errors): calls
/// `each` with the string `field` of every non-blank line's object; returns how many.
pub fn json_lines_from(
    reader: impl std::io::BufRead,
    origin: &str,
    field: &str,
    each: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<usize, String> {
    let mut count = 0;
    for (index, line) in reader.lines().enumerate() {
        let at = || format!("`{origin}` line {}", index + 1);
        let line = line.map_err(|e| format!("{}: {e}", at()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("{}: not a JSON object: {e}", at()))?;
        each(document_field(&value, field).map_err(|e| format!("{}: {e}", at()))?)?;
        count += 1;
    }
    Ok(count)
}

/// The string `field` of one JSON Lines object.
fn document_field<'a>(value: &'a serde_json::Value, field: &str) -> Result<&'a str, String> {
    let Some(object) = value.as_object() else {
        return Err(format!("expected an object with a `{field}` string, found {}", kind(value)));
    };
    match object.get(field) {
        Some(serde_json::Value::String(text)) => Ok(text),
        Some(other) => Err(format!("`{field}` is {}, not a string", kind(other))),
        None => {
            let fields: Vec<&str> = object.keys().map(String::as_str).collect();
            Err(format!("no `{field}` field (it has: {}); name the field with `field:`", fields.join(", ")))
        }
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn parquet(path: &Path, field: &str, each: &mut dyn FnMut(&str) -> Result<(), String>) -> Result<usize, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    parquet_from(file, &path.display().to_string(), field, each)
}

/// [`read`]'s Parquet reader on any [`parquet::file::reader::ChunkReader`] (a file, or
/// bytes in memory; `origin` names it in errors): calls `each` with the non-null
/// strings of column `field`; returns how many.
///
/// The `parquet` crate panics on some malformed files instead of returning an error (a
/// plain-encoded string page that ends inside a value's length; found by fuzzing, see
/// `fuzz/README.md`): such a panic is caught and becomes this file's error. A panic in
/// `each` is not the file's fault and is passed on.
pub fn parquet_from<R: parquet::file::reader::ChunkReader + 'static>(
    reader: R,
    origin: &str,
    field: &str,
    each: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<usize, String> {
    use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
    let mut in_each = false;
    let mut guarded = |text: &str| {
        in_each = true;
        let result = each(text);
        in_each = false;
        result
    };
    match catch_unwind(AssertUnwindSafe(|| parquet_documents(reader, origin, field, &mut guarded))) {
        Ok(result) => result,
        Err(payload) if in_each => resume_unwind(payload),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(format!("`{origin}`: a malformed Parquet file (the Parquet reader failed: {what})"))
        }
    }
}

fn parquet_documents<R: parquet::file::reader::ChunkReader + 'static>(
    reader: R,
    origin: &str,
    field: &str,
    each: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<usize, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let fail = |e: parquet::errors::ParquetError| format!("`{origin}`: {e}{}", codec_hint(&e));
    let malformed = |e: String| format!("`{origin}`: a malformed Parquet file: {e}");
    let reader = Shared(std::sync::Arc::new(reader));
    crate::thrift_check::footer(&reader).map_err(malformed)?;
    let pages = reader.clone();
    let reader = SerializedFileReader::new(reader).map_err(fail)?;
    let column =
        text_column(reader.metadata().file_metadata().schema_descr(), field).map_err(|e| format!("`{origin}`: {e}"))?;
    let mut count = 0;
    for group in 0..reader.num_row_groups() {
        // `get_column_reader` asserts (panics) on a negative offset or size.
        let chunk = reader.metadata().row_group(group).column(column);
        let start = chunk.dictionary_page_offset().unwrap_or(chunk.data_page_offset());
        if start < 0 || chunk.compressed_size() < 0 {
            return Err(format!("`{origin}`: row group {group}: the text column has a negative offset or size"));
        }
        crate::thrift_check::pages(&pages, start as u64, chunk.compressed_size() as u64).map_err(malformed)?;
        let rows = reader.get_row_group(group).map_err(fail)?;
        let column_reader = rows.get_column_reader(column).map_err(fail)?;
        count += parquet_strings(column_reader, count, each).map_err(|e| format!("`{origin}`: {e}"))?;
    }
    Ok(count)
}

/// A reader shared between the crate's file reader and [`crate::thrift_check`], which
/// reads the same bytes first.
struct Shared<R>(std::sync::Arc<R>);

impl<R> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<R: parquet::file::reader::Length> parquet::file::reader::Length for Shared<R> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<R: parquet::file::reader::ChunkReader> parquet::file::reader::ChunkReader for Shared<R> {
    type T = R::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<R::T> {
        self.0.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// What to do about pages in a compression this build does not read.
fn codec_hint(error: &parquet::errors::ParquetError) -> &'static str {
    if error.to_string().contains("Disabled feature at compile time") {
        "; hyb reads uncompressed, Snappy and gzip pages: re-save the file with one of those (pyarrow's \
         `compression=\"snappy\"`)"
    } else {
        ""
    }
}

/// The index of the top-level string column `field`.
fn text_column(schema: &parquet::schema::types::SchemaDescriptor, field: &str) -> Result<usize, String> {
    let columns = schema.columns();
    let Some(index) = columns.iter().position(|c| c.path().string() == field) else {
        let names: Vec<String> = columns.iter().map(|c| c.path().string()).collect();
        return Err(format!("no column `{field}` (it has: {}); name the column with `field:`", names.join(", ")));
    };
    let column = &columns[index];
    if column.physical_type() != parquet::basic::Type::BYTE_ARRAY || column.max_rep_level() > 0 {
        return Err(format!("column `{field}` is not a column of strings"));
    }
    Ok(index)
}

/// Hands over the non-null strings of one row group's column; `before` documents came
/// earlier (to number the document in an error).
fn parquet_strings(
    column: parquet::column::reader::ColumnReader,
    before: usize,
    each: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<usize, String> {
    use parquet::column::reader::ColumnReader;
    let ColumnReader::ByteArrayColumnReader(mut reader) = column else {
        return Err("the text column is not a column of strings".into());
    };
    let mut count = 0;
    loop {
        let (mut levels, mut values) = (Vec::new(), Vec::new());
        let (records, _, _) =
            reader.read_records(1024, Some(&mut levels), None, &mut values).map_err(|e| e.to_string())?;
        for value in &values {
            let text = std::str::from_utf8(value.data())
                .map_err(|_| format!("document {}: the text is not UTF-8", before + count + 1))?;
            each(text)?;
            count += 1;
        }
        if records == 0 {
            return Ok(count);
        }
    }
}
