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
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let mut count = 0;
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let at = || format!("`{}` line {}", path.display(), index + 1);
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
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let fail = |e: parquet::errors::ParquetError| format!("`{}`: {e}{}", path.display(), codec_hint(&e));
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let reader = SerializedFileReader::new(file).map_err(fail)?;
    let column = text_column(reader.metadata().file_metadata().schema_descr(), field)
        .map_err(|e| format!("`{}`: {e}", path.display()))?;
    let mut count = 0;
    for group in 0..reader.num_row_groups() {
        let rows = reader.get_row_group(group).map_err(fail)?;
        let column_reader = rows.get_column_reader(column).map_err(fail)?;
        count += parquet_strings(column_reader, count, each).map_err(|e| format!("`{}`: {e}", path.display()))?;
    }
    Ok(count)
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
