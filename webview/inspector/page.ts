/** The inspector's page body: the host wraps it in the CSP'd document (webviewHtml), main.ts fills it. */
export const INSPECTOR_BODY = `<h1 id="title">Expert</h1>
<vscode-data-grid id="facts" grid-template-columns="160px 1fr" aria-label="Expert facts"></vscode-data-grid>
<h2>Update norm per layer</h2><div class="legend" id="norms-legend"></div><canvas id="norms"></canvas>
<h2>Singular-value spectrum</h2><div class="legend" id="spectrum-legend"></div><canvas id="spectrum"></canvas>
<h2>Training loss</h2><canvas id="curve"></canvas>
<section id="similarity-section" hidden><h2>Cosine similarity of expert updates</h2><canvas id="similarity"></canvas></section>
<section id="confusion-section" hidden><h2>Router confusion on held-out data, domain (rows) → routed expert (columns)</h2><canvas id="confusion"></canvas></section>
<section id="completions-section" hidden><h2>Completions on this domain's held-out files, from the last "moa eval --completions"</h2><vscode-data-grid id="completions" aria-label="Completion scores"></vscode-data-grid></section>
<section id="eval-section" hidden><h2>Held-out loss, domain (rows) × expert (columns), from the last "moa eval"</h2><canvas id="eval"></canvas></section>`;
