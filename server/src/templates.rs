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
    #[error("{file}: {}", .invalid.message)]
    Definition {
        /// The file.
        file: String,
        /// The rule broken, with the field.
        invalid: Invalid,
    },
}

impl TemplateFileError {
    /// The error in `lang`, for a person; `Display` gives it in English, with the detail.
    pub fn text(&self, lang: Lang) -> String {
        match (self, lang) {
            (TemplateFileError::File(t), _) => t.in_lang(lang),
            (TemplateFileError::Definition { .. }, Lang::En) => self.to_string(),
            (TemplateFileError::Definition { file, invalid }, _) => {
                let problem = message!(
                    lang,
                    "tpl-rule",
                    // A select's keys cannot hold a dot: `items.id` is keyed `items_id`.
                    field = invalid.field.replace('.', "_"),
                    reason = invalid.reason
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
        Some("toml") => toml::from_str(&text).map_err(|e| unparsed(&e))?,
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
    t.check_definition()
        .map_err(|invalid| TemplateFileError::Definition {
            file: file_name.clone(),
            invalid,
        })?;
    Ok(t)
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
