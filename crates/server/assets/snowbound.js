// Snowbound UI: small enhancements only. Every form works without this script.
"use strict";

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Test Connection in place: same POST, answered as JSON.
function testConnection(form) {
  const results = document.getElementById("test-results");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    results.replaceChildren(el("p", { class: "hint" }, "Testing the connection…"));
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const report = await response.json();
      const list = el("ul", { class: "checks" });
      for (const check of report.checks) {
        const item = el("li", { class: check.ok ? "check-ok" : "check-fail" });
        item.append(
          el("span", { class: "badge " + (check.ok ? "ok" : "fail") }, check.ok ? "✓ passed" : "✗ failed"),
          " ",
          el("strong", {}, check.name),
          ": " + check.detail,
        );
        list.append(item);
      }
      results.replaceChildren(
        el("h3", {}, report.ok ? "Connection works" : "Connection has problems"),
        list,
        ...report.warnings.map((w) => el("p", { class: "warning" }, w)),
      );
    } catch (error) {
      results.replaceChildren(el("p", { class: "error-text" }, "Test Connection failed: " + error.message));
    } finally {
      button.disabled = false;
    }
  });
}

// Rebuilds a dropdown from a choice list, keeping the current value selectable.
function fillSelect(control, choices) {
  let select = control;
  if (control.tagName !== "SELECT") {
    select = el("select", { id: control.id, name: control.name });
    for (const attr of ["data-choice-field", "aria-describedby"]) {
      if (control.hasAttribute(attr)) select.setAttribute(attr, control.getAttribute(attr));
    }
    control.replaceWith(select);
  }
  const current = control.value;
  const keepEmpty = control.tagName === "SELECT" && control.querySelector('option[value=""]');
  const options = [];
  if (keepEmpty) options.push(el("option", { value: "" }, keepEmpty.textContent));
  for (const c of choices) options.push(el("option", { value: c.value }, c.label + " (" + c.value + ")"));
  if (current && !choices.some((c) => c.value === current)) {
    options.push(el("option", { value: current }, current + " (not in ServiceNow's list)"));
  }
  select.replaceChildren(...options);
  select.value = current;
}

function reloadChoices(form) {
  const button = document.getElementById("reload-choices");
  const status = document.getElementById("choices-status");
  if (!button) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const controls = [...form.querySelectorAll("[data-choice-field]")];
    const fields = [...new Set(controls.map((c) => c.dataset.choiceField))];
    status.textContent = "Loading choice lists…";
    const problems = [];
    for (const field of fields) {
      const url = "/integrations/" + form.dataset.integration + "/choices?refresh=true&field=" + encodeURIComponent(field);
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        const answer = await response.json();
        if (answer.choices && answer.choices.length > 0) {
          for (const control of form.querySelectorAll('[data-choice-field="' + field + '"]')) fillSelect(control, answer.choices);
        } else if (answer.warning) {
          problems.push(field + ": " + answer.warning);
        }
      } catch (error) {
        problems.push(field + ": " + error.message);
      }
    }
    status.textContent = problems.length ? problems.join(" · ") : "Choice lists reloaded.";
  });
}

// The secondary severity field shows only while its toggle is on.
function toggles() {
  for (const block of document.querySelectorAll("[data-toggle]")) {
    const box = document.getElementById(block.dataset.toggle);
    if (!box) continue;
    const apply = () => { block.hidden = !box.checked; };
    box.addEventListener("change", apply);
    apply();
  }
}

// Fields of one choice (a servicenow source's settings) show only while it is chosen;
// without JavaScript they are always shown and ignored for other choices.
function shownFor() {
  for (const block of document.querySelectorAll("[data-shown-for]")) {
    const [id, value] = block.dataset.shownFor.split("=");
    const select = document.getElementById(id);
    if (!select) continue;
    const apply = () => { block.hidden = select.value !== value; };
    select.addEventListener("change", apply);
    apply();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const test = document.querySelector('[data-js="test-connection"]');
  if (test) testConnection(test);
  const mappings = document.getElementById("mappings");
  if (mappings) reloadChoices(mappings);
  toggles();
  shownFor();
});
