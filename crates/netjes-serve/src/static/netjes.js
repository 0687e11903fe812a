// netjes serve: copy buttons, and the test page waiting for its message.
// No framework and nothing from the network; the pages work without it.
"use strict";
document.addEventListener("click", (e) => {
  const b = e.target.closest("[data-copy]");
  if (!b) return;
  const el = document.getElementById(b.dataset.copy);
  if (!el) return;
  const text = el.textContent;
  const done = () => { b.textContent = "Copied"; setTimeout(() => { b.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => {});
  } else {
    const r = document.createRange(); r.selectNodeContents(el);
    const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
    try { document.execCommand("copy"); done(); } catch (_) {}
  }
});
// Forms that delete something ask first (the server needs the CSRF token
// either way; this only guards against a slip of the mouse).
document.addEventListener("submit", (e) => {
  const f = e.target.closest("form[data-confirm]");
  if (f && !window.confirm(f.dataset.confirm)) e.preventDefault();
});
const waiting = document.getElementById("waiting");
if (waiting) {
  const id = waiting.dataset.test;
  const poll = () => fetch("/api/tests/" + encodeURIComponent(id), { credentials: "same-origin" })
    .then((r) => r.json())
    .then((t) => {
      document.getElementById("status").textContent = t.status;
      if (t.status === "done" || t.status === "expired") location.reload();
      else setTimeout(poll, 1000);
    })
    .catch(() => setTimeout(poll, 3000));
  setTimeout(poll, 1000);
}
