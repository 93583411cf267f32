//! The files of one compilation: the root `.hyb` file and what it imports, read
//! through a [`Loader`] (the file system, or memory in tests and the fuzzer), and the
//! rendering of diagnostics against them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;
use hyb_grammar::{Diagnostic, FileId, Severity};

pub trait Loader {
    fn load(&self, path: &Path) -> std::io::Result<String>;
}

/// The file system; a file that is not UTF-8 fails with [`crate::encoding::NotUtf8`].
pub struct FsLoader;

impl Loader for FsLoader {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        crate::encoding::read_source(path)
    }
}

/// In-memory files, keyed by path.
#[derive(Default)]
pub struct MemoryLoader {
    pub files: HashMap<PathBuf, String>,
}

impl Loader for MemoryLoader {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }
}

pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

pub struct SourceMap {
    files: Vec<SourceFile>,
    loader: Box<dyn Loader>,
}

impl SourceMap {
    pub fn new(loader: Box<dyn Loader>) -> SourceMap {
        SourceMap { files: Vec::new(), loader }
    }

    pub fn fs() -> SourceMap {
        SourceMap::new(Box::new(FsLoader))
    }

    /// One in-memory file, for tests: returns the map and the file's id.
    pub fn single(path: &str, text: &str) -> (SourceMap, FileId) {
        let mut loader = MemoryLoader::default();
        loader.files.insert(PathBuf::from(path), text.to_string());
        let mut map = SourceMap::new(Box::new(loader));
        let id = map.load(Path::new(path)).expect("the file was just inserted");
        (map, id)
    }

    /// Loads a file (once per path) and returns its id.
    pub fn load(&mut self, path: &Path) -> std::io::Result<FileId> {
        if let Some(index) = self.files.iter().position(|file| file.path == path) {
            return Ok(FileId(index as u32));
        }
        let text = self.loader.load(path)?;
        Ok(self.add(path.to_path_buf(), text))
    }

    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile { path, text });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// Renders diagnostics as rustc-style text: `file:line:col`, the span underlined,
    /// the message and a help line. No colour, so the text can be snapshot.
    pub fn render(&self, diagnostics: &[Diagnostic]) -> String {
        self.render_with(diagnostics, &mut term::termcolor::NoColor::new(Vec::new()))
    }

    /// Like [`SourceMap::render`], with ANSI colours.
    pub fn render_colored(&self, diagnostics: &[Diagnostic]) -> String {
        self.render_with(diagnostics, &mut term::termcolor::Ansi::new(Vec::new()))
    }

    fn render_with<W: term::termcolor::WriteColor + IntoBytes>(
        &self,
        diagnostics: &[Diagnostic],
        writer: &mut W,
    ) -> String {
        let mut files = SimpleFiles::new();
        for file in &self.files {
            files.add(file.path.display().to_string(), file.text.as_str());
        }
        let config = term::Config::default();
        for diagnostic in diagnostics {
            let converted = convert(diagnostic);
            term::emit_to_write_style(writer, &config, &files, &converted).expect("writing to memory cannot fail");
        }
        String::from_utf8_lossy(&writer.bytes()).into_owned()
    }
}

trait IntoBytes {
    fn bytes(&self) -> Vec<u8>;
}

impl IntoBytes for term::termcolor::NoColor<Vec<u8>> {
    fn bytes(&self) -> Vec<u8> {
        self.get_ref().clone()
    }
}

impl IntoBytes for term::termcolor::Ansi<Vec<u8>> {
    fn bytes(&self) -> Vec<u8> {
        self.get_ref().clone()
    }
}

fn convert(diagnostic: &Diagnostic) -> cs::Diagnostic<usize> {
    let severity = match diagnostic.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
    };
    let labels = diagnostic
        .labels
        .iter()
        .map(|label| {
            let style = if label.primary { cs::LabelStyle::Primary } else { cs::LabelStyle::Secondary };
            cs::Label::new(style, label.span.file.0 as usize, label.span.range()).with_message(&label.message)
        })
        .collect();
    let mut notes: Vec<String> = diagnostic.notes.iter().map(|note| format!("note: {note}")).collect();
    if let Some(help) = &diagnostic.help {
        notes.push(format!("help: {help}"));
    }
    cs::Diagnostic::new(severity).with_message(&diagnostic.message).with_labels(labels).with_notes(notes)
}
