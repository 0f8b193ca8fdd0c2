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

/// Reads and checks a template file; the version is left 0 (publishing assigns it).
pub fn read(path: &Path) -> anyhow::Result<Template> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let file: TemplateFile = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => {
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        Some("json") => {
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        _ => anyhow::bail!(
            "{}: name the file .toml or .json so its format is known",
            path.display()
        ),
    };
    let items = file
        .items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |what: &str, e: String| {
                anyhow::anyhow!(
                    "{}: item {} ({}), {what}: {e}",
                    path.display(),
                    i + 1,
                    item.id
                )
            };
            Ok(Item {
                answer: item
                    .answer
                    .parse::<AnswerType>()
                    .map_err(|e| at("answer", e))?,
                hazard_category: item
                    .hazard_category
                    .as_deref()
                    .map(str::parse::<HazardCategory>)
                    .transpose()
                    .map_err(|e| at("hazard_category", e))?,
                id: item.id.clone(),
                label: item.label,
                mandatory: item.mandatory,
                photo_on_fail: item.photo_on_fail,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let t = Template {
        id: file.id,
        version: 0,
        name: file.name,
        items,
    };
    t.check_definition()
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?;
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
