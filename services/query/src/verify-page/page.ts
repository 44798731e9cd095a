/** The verifier page: a form and a script; everything happens in the browser. */
export const VERIFY_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verify a Connect receipt</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
textarea{width:100%;height:12rem;font:12px monospace}input[type=text]{width:100%}
.ok{color:#05691f}.bad{color:#a4001d}.skip{color:#666}#result{font-weight:bold;margin:1rem 0}
#proven{border:2px solid #05691f;border-radius:.4rem;padding:0 1rem 1rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:bold}dd{margin:0;white-space:pre-wrap}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.2rem .4rem;text-align:left}
ul{padding-left:1.2rem}
</style></head>
<body>
<h1>Verify a receipt</h1>
<p>Paste a receipt bundle (from <code>GET /v1/commitments/:id/receipt</code>) or drop its file on this page.
It is checked here, in your browser: nothing is sent anywhere.</p>
<p><label>Receipt file <input id="file" type="file" accept="application/json,.json"></label></p>
<textarea id="bundle" aria-label="Receipt bundle (JSON)" placeholder='{"origin": …, "checkpoint": …, "streamHead": …, "entries": […], "state": {…}}'></textarea>
<p><label>Verifier key of the ledger you trust (required: from its operator, or <code>npx connect keys show</code>)<br>
<input id="key" type="text" autocomplete="off" placeholder="origin+hash+base64key"></label></p>
<button id="verify" type="button">Verify</button>
<p id="result" role="status"></p>
<section id="proven" hidden><h2>What this receipt proves</h2><p id="proven-intro"></p><dl id="summary"></dl></section>
<h2>Checks</h2><ul id="checks"></ul>
<h2>History</h2>
<table><thead><tr><th>Index</th><th>Recorded at</th><th>Event</th><th>Actor</th></tr></thead><tbody id="history"></tbody></table>
<script src="/verify/app.js"></script>
</body></html>`;
