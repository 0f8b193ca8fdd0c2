//! Checklist template files (`patrolsync admin template publish FILE`): TOML or JSON, e.g.
//!
//! ```toml
//! id = "daily-fire"
//! name = "Daily fire safety check"
//!
//! [[items]]
//! id = "exits"
//! label = "Evacuation routes and exits clear"
//! answer = "check"            # check (ok / issue / n.a.), number or text
//! mandatory = true
//! photo_on_fail = true
//! hazard_category = "blocked_evacuation"
//! ```
//!
//! Publishing assigns the next version unless the content equals the latest; versions are
//! never changed, so answers recorded against an old one keep their meaning.

use std::path::Path;

use patrolsync_i18n::{Lang, Text, message, text};

use patrolsync_proto::checkin::Invalid;
use patrolsync_proto::hazard::HazardCategory;
use patrolsync_proto::template::{AnswerType, Item, Template};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    id: String,
    name: String,
    items: Vec<ItemFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemFile {
    id: String,
    label: String,
    #[serde(default = "check")]
    answer: String,
    #[serde(default)]
    mandatory: bool,
    #[serde(default)]
    photo_on_fail: bool,
    #[serde(default)]
    hazard_category: Option<String>,
}

fn check() -> String {
    "check".into()
}

/// Why a template file was not read: nothing was published.
#[derive(Debug, thiserror::Error)]
pub enum TemplateFileError {
    /// The file could not be read or parsed, or a value is not one the field takes.
    #[error("{0}")]
    File(Text),
    /// The template breaks a rule of templates (an id, a missing name, a duplicate item).
    #[error("{}: {}", .0.file, .0.invalid.message)]
    Definition(Box<BrokenRule>),
}

/// A rule of templates a file breaks.
#[derive(Debug)]
pub struct BrokenRule {
    /// The file.
    pub file: String,
    /// The rule broken, with the field.
    pub invalid: Invalid,
    /// The template's id, as the file gives it.
    pub template: String,
    /// The item the rule is about (its number from 1 and id), where it is about one.
    pub item: Option<(usize, String)>,
}

impl TemplateFileError {
    /// The error in `lang`, for a person; `Display` gives it in English, with the detail.
    pub fn text(&self, lang: Lang) -> String {
        match (self, lang) {
            (TemplateFileError::File(t), _) => t.in_lang(lang),
            (TemplateFileError::Definition(_), Lang::En) => self.to_string(),
            (TemplateFileError::Definition(broken), _) => {
                let BrokenRule {
                    file,
                    invalid,
                    template,
                    item,
                } = broken.as_ref();
                let (n, id) = item.clone().unwrap_or_default();
                let problem = message!(
                    lang,
                    "tpl-rule",
                    // A select's keys cannot hold a dot: `items.id` is keyed `items_id`.
                    field = invalid.field.replace('.', "_"),
                    reason = invalid.reason,
                    value = patrolsync_i18n::printable(template),
                    n = n,
                    item = patrolsync_i18n::printable(&id)
                );
                message!(lang, "tpl-definition", file = file, problem = problem)
            }
        }
    }
}

/// Reads and checks a template file; the version is left 0 (publishing assigns it).
pub fn read(path: &Path) -> Result<Template, TemplateFileError> {
    let file_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        TemplateFileError::File(text!("file-unreadable", file = file_name, error = e))
    })?;
    let unparsed = |e: &dyn std::fmt::Display| {
        TemplateFileError::File(text!("file-unparsed", file = file_name, error = e))
    };
    let file: TemplateFile = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(&text).map_err(|e| {
            // toml's own text spans several lines (the source line, a caret); one line here:
            // where, then what.
            let at = e.span().map_or(0, |s| s.start);
            let line = text[..at].matches('\n').count() + 1;
            let column = text[..at]
                .rsplit('\n')
                .next()
                .map_or(0, |l| l.chars().count())
                + 1;
            TemplateFileError::File(text!(
                "tpl-toml",
                file = file_name,
                line = line,
                column = column,
                error = e.message()
            ))
        })?,
        Some("json") => serde_json::from_str(&text).map_err(|e| unparsed(&e))?,
        _ => {
            return Err(TemplateFileError::File(text!(
                "file-format",
                file = file_name,
                formats = ".toml, .json"
            )));
        }
    };
    let items =
        file.items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let unknown = |field: &str, value: &str, known: &[&str]| {
                    TemplateFileError::File(text!(
                        "tpl-item-value",
                        file = file_name,
                        n = i + 1,
                        item = item.id,
                        field = field,
                        value = value,
                        known = known.join(", ")
                    ))
                };
                Ok(Item {
                    answer: item.answer.parse::<AnswerType>().map_err(|_| {
                        unknown("answer", &item.answer, &["check", "number", "text"])
                    })?,
                    hazard_category: item
                        .hazard_category
                        .as_deref()
                        .map(|c| {
                            c.parse::<HazardCategory>().map_err(|_| {
                                let known: Vec<&str> =
                                    HazardCategory::ALL.iter().map(|c| c.as_str()).collect();
                                unknown("hazard_category", c, &known)
                            })
                        })
                        .transpose()?,
                    id: item.id.clone(),
                    label: item.label,
                    mandatory: item.mandatory,
                    photo_on_fail: item.photo_on_fail,
                })
            })
            .collect::<Result<Vec<_>, TemplateFileError>>()?;
    let t = Template {
        id: file.id,
        version: 0,
        name: file.name,
        items,
    };
    t.check_definition().map_err(|invalid| {
        TemplateFileError::Definition(Box::new(BrokenRule {
            file: file_name.clone(),
            item: culprit(&t, &invalid),
            template: t.id.clone(),
            invalid,
        }))
    })?;
    Ok(t)
}

/// The item (number from 1, id) a broken rule of `t` is about: the first repeat of an id, or
/// the first item that breaks the rule by itself (checked alone, so the rule stays the
/// protocol crate's). None for a rule about the template as a whole.
fn culprit(t: &Template, invalid: &Invalid) -> Option<(usize, String)> {
    if !invalid.field.starts_with("items.") {
        return None;
    }
    let found = if invalid.reason == "duplicate" {
        t.items
            .iter()
            .enumerate()
            .find(|(i, item)| t.items[..*i].iter().any(|o| o.id == item.id))
    } else {
        t.items.iter().enumerate().find(|(_, item)| {
            let alone = Template {
                items: vec![(*item).clone()],
                ..t.clone()
            };
            alone
                .check_definition()
                .is_err_and(|e| e.field == invalid.field && e.reason == invalid.reason)
        })
    };
    found.map(|(i, item)| (i + 1, item.id.clone()))
}

/// JSON for `admin template list/show`.
pub fn json(t: &Template) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "version": t.version,
        "name": t.name,
        "items": t.items.iter().map(|i| serde_json::json!({
            "id": i.id,
            "label": i.label,
            "answer": i.answer.as_str(),
            "mandatory": i.mandatory,
            "photo_on_fail": i.photo_on_fail,
            "hazard_category": i.hazard_category.map(|c| c.as_str()),
        })).collect::<Vec<_>>(),
    })
}
