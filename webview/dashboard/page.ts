/** The dashboard's page body: the host wraps it in the CSP'd document (webviewHtml), main.ts fills it. */
export const DASHBOARD_BODY = `<header>
  <h1>MoA training</h1>
  <vscode-button id="stop" appearance="secondary" disabled>Stop</vscode-button>
</header>
<section class="stats">
  <div><label>Status</label><span id="status">idle</span></div>
  <div><label>Device</label><span id="device">—</span></div>
  <div><label>Stage</label><span id="stage">—</span></div>
  <div><label>Step</label><span id="progress">—</span></div>
  <div><label>Learning rate</label><span id="lr">—</span></div>
  <div><label>Tokens/s</label><span id="tps">—</span></div>
  <div><label>ETA</label><span id="eta">—</span></div>
</section>
<div id="legend"></div>
<div id="chart" aria-label="Loss per expert"></div>`;
