//! The regression set of bad files: each is rejected, and its rendered diagnostics
//! (file:line:col, the span underlined, message, help) are a snapshot.

use crate::{compile, render, root, settings, snapshot_name};

#[test]
fn every_bad_file_is_rejected_with_a_snapshot_diagnostic() {
    let dir = root().join("tests/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("tests/bad").map(|e| e.expect("entry").path()).collect();
    files.retain(|f| f.extension().is_some_and(|e| e == "hyb"));
    files.sort();
    assert!(files.len() >= 25, "the regression set shrank to {}", files.len());
    for file in files {
        let compilation = compile(&file);
        let name = snapshot_name(&file, &dir);
        assert!(compilation.checked.has_errors(), "{name} was accepted");
        assert!(compilation.model().is_none());
        for diagnostic in &compilation.checked.diagnostics {
            assert!(
                diagnostic.help.is_some() || !diagnostic.notes.is_empty() || diagnostic.labels.len() > 1,
                "{name}: `{}` has no help",
                diagnostic.message
            );
        }
        settings().bind(|| insta::assert_snapshot!(format!("bad__{name}"), render(&compilation)));
    }
}

#[test]
fn several_errors_are_reported_in_one_run() {
    let compilation = compile(&root().join("tests/bad/syntax_several.hyb"));
    assert_eq!(compilation.checked.diagnostics.len(), 3, "{}", render(&compilation));
    let compilation = compile(&root().join("tests/bad/wrong_types.hyb"));
    assert!(compilation.checked.diagnostics.len() >= 3, "{}", render(&compilation));
}

#[test]
fn did_you_mean() {
    let text = render(&compile(&root().join("tests/bad/unknown_mixer.hyb")));
    assert!(text.contains("did you mean `gated_deltanet`?"), "{text}");
    assert!(text.contains("did you mean `attention`?"), "{text}");
    let text = render(&compile(&root().join("tests/bad/unknown_argument_fla_spelling.hyb")));
    assert!(text.contains("fla's `num_heads` is written `heads` here"), "{text}");
    assert!(text.contains("did you mean `expand_k`?"), "{text}");
}

#[test]
fn an_unclosed_bracket_is_shown_where_it_was_opened() {
    let compilation = compile(&root().join("tests/bad/unclosed_delimiter.hyb"));
    let text = render(&compilation);
    assert_eq!(compilation.checked.diagnostics.len(), 2, "{text}");
    for (diagnostic, opened) in compilation.checked.diagnostics.iter().zip(["gated_deltanet(", "= ("]) {
        assert_eq!(diagnostic.message, "unclosed delimiter `(`", "{text}");
        let opener = diagnostic.labels.iter().find(|l| !l.primary).expect("a label where it was opened");
        let source = &compilation.sources.file(opener.span.file).text;
        assert!(source[..opener.span.range().end].ends_with(opened), "{text}");
    }
}
