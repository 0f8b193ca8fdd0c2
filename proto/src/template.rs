//! Checklist templates: versioned lists of items a check-in answers. An item keeps its id across
//! versions; publishing a new version never touches answers recorded against an old one (each
//! check-in names the template id and version it used). The rules here are what the SDK checks
//! before it queues a check-in and what the server checks when it arrives.

use crate::checkin::{Answer, AnswerValue, CheckInOutcome, Invalid};
use crate::hazard::HazardCategory;
use crate::wire;

/// How an item is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerType {
    /// ok / issue / not applicable.
    Check,
    /// A number, in the answer's note (e.g. an extinguisher's pressure); the value says whether
    /// it is fine.
    Number,
    /// Free text, in the answer's note.
    Text,
}

impl AnswerType {
    /// The name in template files.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerType::Check => "check",
            AnswerType::Number => "number",
            AnswerType::Text => "text",
        }
    }
}

impl std::str::FromStr for AnswerType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "check" => Ok(AnswerType::Check),
            "number" => Ok(AnswerType::Number),
            "text" => Ok(AnswerType::Text),
            _ => Err(format!("answer type {s:?}: use check, number or text")),
        }
    }
}

/// One item of a checklist.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Stable across versions.
    pub id: String,
    /// What the patroller reads.
    pub label: String,
    /// How it is answered.
    pub answer: AnswerType,
    /// Must be answered when the checkpoint was inspected.
    pub mandatory: bool,
    /// An `issue` answer needs a photo.
    pub photo_on_fail: bool,
    /// An `issue` answer creates a hazard of this category.
    pub hazard_category: Option<HazardCategory>,
}

/// A checklist template at one version.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// Stable id, e.g. `daily-fire`.
    pub id: String,
    /// From 1, one more per published change.
    pub version: u32,
    /// Display name.
    pub name: String,
    /// The items, in order.
    pub items: Vec<Item>,
}

fn bad(field: &str, reason: &'static str, message: String) -> Invalid {
    Invalid::new(field, reason, message)
}

impl Template {
    /// Checks the definition: an id, a name, items with unique non-empty ids and labels.
    pub fn check_definition(&self) -> Result<(), Invalid> {
        let code_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !code_ok(&self.id) {
            return Err(bad(
                "id",
                "invalid",
                format!(
                    "template id {:?}: letters, digits, '-', '_' or '.', at most 64",
                    self.id
                ),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(bad("name", "missing", "the template needs a name".into()));
        }
        if self.items.is_empty() {
            return Err(bad("items", "missing", "the template has no items".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, item) in self.items.iter().enumerate() {
            if !code_ok(&item.id) {
                return Err(bad(
                    "items.id",
                    "invalid",
                    format!(
                        "item {}: id {:?}: letters, digits, '-', '_' or '.'",
                        i + 1,
                        item.id
                    ),
                ));
            }
            if !seen.insert(item.id.as_str()) {
                return Err(bad(
                    "items.id",
                    "duplicate",
                    format!("item {}: id {} is used twice", i + 1, item.id),
                ));
            }
            if item.label.trim().is_empty() {
                return Err(bad(
                    "items.label",
                    "missing",
                    format!("item {} ({}) has no label", i + 1, item.id),
                ));
            }
        }
        Ok(())
    }

    /// Checks a check-in's answers against this version: every answer names an item; when the
    /// checkpoint was inspected, every mandatory item is answered; an `issue` on an item that
    /// asks for one carries a photo; numbers and texts are in the note.
    pub fn check_answers(
        &self,
        outcome: CheckInOutcome,
        answers: &[Answer],
    ) -> Result<(), Invalid> {
        let label = format!("{} v{}", self.id, self.version);
        let mut answered = std::collections::HashSet::new();
        for a in answers {
            let Some(item) = self.items.iter().find(|i| i.id == a.item_id) else {
                return Err(bad(
                    "answers.item_id",
                    "unknown",
                    format!("{label} has no item {:?}", a.item_id),
                ));
            };
            if !answered.insert(item.id.as_str()) {
                return Err(bad(
                    "answers.item_id",
                    "duplicate",
                    format!("item {} is answered twice", item.id),
                ));
            }
            if a.value == AnswerValue::Issue && item.photo_on_fail && a.photos.is_empty() {
                return Err(bad(
                    "answers.photos",
                    "missing",
                    format!(
                        "item {} ({}) needs a photo when it has an issue",
                        item.id, item.label
                    ),
                ));
            }
            let note = a.note.trim();
            let skipped = a.value == AnswerValue::NotApplicable;
            match item.answer {
                AnswerType::Number if !skipped && note.parse::<f64>().is_err() => {
                    return Err(bad(
                        "answers.note",
                        "not_a_number",
                        format!(
                            "item {} ({}) is a number, got {note:?}",
                            item.id, item.label
                        ),
                    ));
                }
                AnswerType::Text if !skipped && note.is_empty() => {
                    return Err(bad(
                        "answers.note",
                        "missing",
                        format!("item {} ({}) needs a text answer", item.id, item.label),
                    ));
                }
                _ => {}
            }
        }
        if outcome == CheckInOutcome::Inspected
            && let Some(item) = self
                .items
                .iter()
                .find(|i| i.mandatory && !answered.contains(i.id.as_str()))
        {
            return Err(bad(
                // The item's id names it in the device's message (「缺少必填项：answers.wiring」).
                &format!("answers.{}", item.id),
                "missing",
                format!(
                    "{label}: mandatory item {} ({}) is not answered",
                    item.id, item.label
                ),
            ));
        }
        Ok(())
    }

    /// The hazards an answered checklist should raise: each `issue` on an item with a hazard
    /// category, with that item.
    pub fn hazards<'a>(
        &'a self,
        answers: &'a [Answer],
    ) -> Vec<(&'a Item, &'a Answer, HazardCategory)> {
        answers
            .iter()
            .filter(|a| a.value == AnswerValue::Issue)
            .filter_map(|a| {
                let item = self.items.iter().find(|i| i.id == a.item_id)?;
                Some((item, a, item.hazard_category?))
            })
            .collect()
    }

    /// Protobuf bytes (what the change log carries).
    pub fn encode(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.to_wire())
    }

    /// From protobuf bytes, checked.
    pub fn decode(bytes: &[u8]) -> Result<Template, Invalid> {
        let w = <wire::ChecklistTemplate as prost::Message>::decode(bytes)
            .map_err(|e| bad("template", "corrupt", e.to_string()))?;
        Template::from_wire(w)
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::ChecklistTemplate {
        wire::ChecklistTemplate {
            id: self.id.clone(),
            version: self.version,
            name: self.name.clone(),
            items: self
                .items
                .iter()
                .map(|i| wire::ChecklistItem {
                    id: i.id.clone(),
                    label: i.label.clone(),
                    answer: match i.answer {
                        AnswerType::Check => wire::ChecklistAnswerType::Check,
                        AnswerType::Number => wire::ChecklistAnswerType::Number,
                        AnswerType::Text => wire::ChecklistAnswerType::Text,
                    } as i32,
                    mandatory: i.mandatory,
                    photo_on_fail: i.photo_on_fail,
                    hazard_category: i.hazard_category.map_or(0, |c| c.to_wire()),
                })
                .collect(),
        }
    }

    /// From the wire form, checked.
    pub fn from_wire(w: wire::ChecklistTemplate) -> Result<Template, Invalid> {
        let items = w
            .items
            .into_iter()
            .map(|i| {
                let answer = match wire::ChecklistAnswerType::try_from(i.answer) {
                    Ok(wire::ChecklistAnswerType::Check) => AnswerType::Check,
                    Ok(wire::ChecklistAnswerType::Number) => AnswerType::Number,
                    Ok(wire::ChecklistAnswerType::Text) => AnswerType::Text,
                    _ => {
                        return Err(bad(
                            "items.answer",
                            "invalid",
                            format!("item {}: unknown answer type {}", i.id, i.answer),
                        ));
                    }
                };
                Ok(Item {
                    hazard_category: HazardCategory::from_wire(i.hazard_category)?,
                    id: i.id,
                    label: i.label,
                    answer,
                    mandatory: i.mandatory,
                    photo_on_fail: i.photo_on_fail,
                })
            })
            .collect::<Result<_, Invalid>>()?;
        let t = Template {
            id: w.id,
            version: w.version,
            name: w.name,
            items,
        };
        t.check_definition()?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        let item = |id: &str, answer, mandatory, photo_on_fail, hazard_category| Item {
            id: id.into(),
            label: format!("item {id}"),
            answer,
            mandatory,
            photo_on_fail,
            hazard_category,
        };
        Template {
            id: "daily-fire".into(),
            version: 2,
            name: "Daily fire check".into(),
            items: vec![
                item(
                    "exits",
                    AnswerType::Check,
                    true,
                    true,
                    Some(HazardCategory::BlockedEvacuation),
                ),
                item("pressure", AnswerType::Number, false, false, None),
                item("remarks", AnswerType::Text, false, false, None),
            ],
        }
    }

    fn answer(item: &str, value: AnswerValue, note: &str, photos: usize) -> Answer {
        Answer {
            item_id: item.into(),
            value,
            note: note.into(),
            photos: vec![[7; 32]; photos],
        }
    }

    #[test]
    fn answers_are_checked_against_the_version() {
        let t = template();
        let ok = [
            answer("exits", AnswerValue::Ok, "", 0),
            answer("pressure", AnswerValue::Ok, "1.2", 0),
        ];
        t.check_answers(CheckInOutcome::Inspected, &ok)
            .expect("fine");
        let reason = |answers: &[Answer], outcome| {
            t.check_answers(outcome, answers)
                .expect_err("refused")
                .reason
        };
        assert_eq!(reason(&[], CheckInOutcome::Inspected), "missing");
        // Locked: nothing was inspected, so nothing is mandatory.
        t.check_answers(CheckInOutcome::Locked, &[])
            .expect("locked");
        assert_eq!(
            reason(
                &[answer("exits", AnswerValue::Issue, "", 0)],
                CheckInOutcome::Inspected
            ),
            "missing"
        );
        assert_eq!(
            reason(
                &[answer("ghost", AnswerValue::Ok, "", 0)],
                CheckInOutcome::Locked
            ),
            "unknown"
        );
        assert_eq!(
            reason(
                &[
                    answer("exits", AnswerValue::Ok, "", 0),
                    answer("pressure", AnswerValue::Ok, "high", 0)
                ],
                CheckInOutcome::Inspected
            ),
            "not_a_number"
        );
        assert_eq!(
            reason(
                &[
                    answer("exits", AnswerValue::Ok, "", 0),
                    answer("remarks", AnswerValue::Ok, " ", 0)
                ],
                CheckInOutcome::Inspected
            ),
            "missing"
        );
        assert_eq!(
            reason(
                &[
                    answer("exits", AnswerValue::Ok, "", 0),
                    answer("exits", AnswerValue::Ok, "", 0)
                ],
                CheckInOutcome::Inspected
            ),
            "duplicate"
        );
    }

    #[test]
    fn an_issue_on_a_categorised_item_raises_a_hazard() {
        let t = template();
        let answers = [
            answer("exits", AnswerValue::Issue, "bikes", 1),
            answer("pressure", AnswerValue::Issue, "0.4", 0),
        ];
        let raised: Vec<_> = t
            .hazards(&answers)
            .into_iter()
            .map(|(i, _, c)| (i.id.as_str(), c))
            .collect();
        assert_eq!(raised, [("exits", HazardCategory::BlockedEvacuation)]);
    }

    #[test]
    fn the_wire_form_round_trips_and_bad_definitions_are_refused() {
        let t = template();
        assert_eq!(Template::from_wire(t.to_wire()).expect("valid"), t);
        let mut twice = t.clone();
        twice.items.push(twice.items[0].clone());
        assert_eq!(
            twice.check_definition().expect_err("dup").reason,
            "duplicate"
        );
        let mut empty = t;
        empty.items.clear();
        assert_eq!(
            empty.check_definition().expect_err("empty").reason,
            "missing"
        );
    }
}
