//! Records as the Table API shows them: the three display-value modes, reference links,
//! `sysparm_fields` (docs/servicenow/TABLE_API.md §2.1, §2.3).

use serde_json::{json, Map, Value};

use crate::choices::ChoiceIndex;
use crate::schema::{Field, Kind, TableDef, Ty};
use crate::store::{Data, Record};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Display {
    False,
    True,
    All,
}

impl Display {
    /// Unknown spellings fall back to the default, as the platform does.
    pub fn parse(s: Option<&str>) -> Self {
        match s.map(|s| s.to_ascii_lowercase()) {
            Some(s) if s == "true" => Display::True,
            Some(s) if s == "all" => Display::All,
            _ => Display::False,
        }
    }
}

pub(crate) struct RenderOpts {
    pub display: Display,
    pub exclude_links: bool,
    pub fields: Option<Vec<String>>,
    /// `http://host/api/now/v2/table`: reference links echo the caller's prefix.
    pub link_base: String,
}

pub(crate) struct Renderer<'a> {
    pub data: &'a Data,
    pub choices: std::sync::Arc<ChoiceIndex>,
    pub opts: &'a RenderOpts,
}

impl<'a> Renderer<'a> {
    pub fn new(data: &'a Data, opts: &'a RenderOpts) -> Self {
        Renderer {
            data,
            choices: data.choice_index(),
            opts,
        }
    }

    fn reference_display(&self, table: &str, id: &str) -> String {
        let found = match table {
            "sys_user" => self
                .data
                .get_any(Kind::User, id)
                .and_then(|r| r.get("name")),
            "sys_user_group" => self
                .data
                .get_any(Kind::Group, id)
                .and_then(|r| r.get("name")),
            "cmdb_ci" => self.data.get_any(Kind::Ci, id).and_then(|r| r.get("name")),
            "incident" => self
                .data
                .get_any(Kind::Incident, id)
                .and_then(|r| r.get("number")),
            _ => None,
        };
        match found {
            Some(s) => s.clone(),
            None if id == "global" => "global".into(),
            None => String::new(),
        }
    }

    /// The journal's display value: newest entry first, as the form shows it.
    fn journal_display(&self, rec: &Record, field: &Field) -> String {
        let id = rec.get("sys_id").map(String::as_str).unwrap_or("");
        let mut out = String::new();
        for e in self.data.journal_of(id).iter().rev() {
            if e.element == field.name {
                out.push_str(&format!(
                    "{} - {} ({})\n{}\n\n",
                    e.sys_created_on, e.sys_created_by, field.label, e.value
                ));
            }
        }
        out
    }

    fn display_value(&self, def: &TableDef, rec: &Record, field: &Field, raw: &str) -> String {
        match field.ty {
            Ty::IntChoice | Ty::TextChoice => self
                .choices
                .label(&def.choice_tables(), field.name, raw)
                .unwrap_or(raw)
                .to_string(),
            Ty::Reference(t) if !raw.is_empty() => self.reference_display(t, raw),
            Ty::Journal => self.journal_display(rec, field),
            _ => raw.to_string(),
        }
    }

    pub fn render(&self, def: &TableDef, rec: &Record) -> Value {
        let mut out = Map::new();
        let wanted: Vec<&'static Field> = match &self.opts.fields {
            Some(names) => names.iter().filter_map(|n| def.field(n)).collect(),
            None => def.fields().collect(),
        };
        for field in wanted {
            let raw = rec.get(field.name).map(String::as_str).unwrap_or("");
            let link = match field.ty {
                Ty::Reference(t) if !raw.is_empty() && !self.opts.exclude_links => {
                    Some(format!("{}/{t}/{raw}", self.opts.link_base))
                }
                _ => None,
            };
            let is_ref = matches!(field.ty, Ty::Reference(_)) && !raw.is_empty();
            let value = match self.opts.display {
                Display::False => match link {
                    Some(link) => json!({"link": link, "value": raw}),
                    None => json!(raw),
                },
                Display::True => {
                    let dv = self.display_value(def, rec, field, raw);
                    match link {
                        Some(link) if is_ref => json!({"display_value": dv, "link": link}),
                        _ => json!(dv),
                    }
                }
                Display::All => {
                    let dv = self.display_value(def, rec, field, raw);
                    let mut o = json!({"display_value": dv, "value": raw});
                    if let Some(link) = link {
                        o["link"] = json!(link);
                    }
                    o
                }
            };
            out.insert(field.name.to_string(), value);
        }
        Value::Object(out)
    }
}
