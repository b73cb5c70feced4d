/** The text of `moa --help` and of each command's --help. */
export const HELP: Record<string, string> = {
  '': `moa — Mixture-of-LoRAs experts for your workspace

usage: moa <command> [options]

commands:
  init        write .moa/moa.json with domains suggested from the workspace's files
  data        tokenize each domain's files into train/val shards
  train       train one LoRA expert per domain (python -m moa_trainer train)
  complete    complete a file at a position with the routed expert
  base        the base model: parameters, size, FIM tokens, training memory; "base set" to change it
  experts     list | attach | detach | pin | unpin | import | export | merge | inspect
  route       which expert(s) serve a file, and why
  serve       an OpenAI-compatible HTTP server over the experts (/v1/completions, /v1/models)
  eval        held-out loss: base, every expert on every domain, mixed baseline, MoA routing
  report      write a self-contained HTML report: loss curves, eval table, heatmap, router, datasets
  doctor      check Python, torch and the device
  setup       make the trainer's Python environment (venv + pip), then check it
  demo        the whole path on a demo workspace built from text on this machine (npm run demo)

common options: --workspace DIR (default: current folder), --json, --help
run "moa <command> --help" for a command's options`,
  init: `usage: moa init [--workspace DIR] [--force] [--json]
Scans the workspace (honouring .gitignore) and writes .moa/moa.json with one domain per language
that has enough files, base model builtin:moa-tiny. Refuses to overwrite without --force.`,
  data: `usage: moa data [--watch] [--workspace DIR] [--json]
Tokenizes each domain's files into .moa/cache/data/<domain>/{train,val}.bin and prints counts.
--watch   then keep watching the workspace: each burst of changes re-tokenizes only the files
          that changed (renames and deletes included); a change to .moa/moa.json or a
          .gitignore rebuilds. Stop with Ctrl+C. With --json, one JSON line per update.`,
  train: `usage: moa train [--steps N] [--minutes M] [--stages experts,router,mixed] [--router-steps N] [--keep-partial] [--python PATH] [--device auto|cpu|cuda] [--workspace DIR] [--json]
       moa train --resume [--run ID] [--finish-now] [--keep-partial]
       moa train --nproc-per-node N|auto [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT]
       moa train --print-launch [--nproc-per-node N] [--nnodes M …] [same options as a run]
Stage 1 (experts) trains every domain's expert together on the frozen base and writes
.moa/experts/<domain>/ in PEFT layout; stage 2 (router, the default with two or more domains)
trains the router (its n-gram decision and the per-layer routers) into .moa/router/; "mixed"
trains the one-LoRA baseline into .moa/baselines/mixed/. --stages router alone refreshes the
router over the existing experts.
The budget: --minutes (training.minutes, default 8; 0 for none) bounds the whole run, the
learning-rate schedule following time or steps, whichever is further along; each expert also
stops once it has seen its domain maxEpochs times (default 4) or when its held-out loss has not
improved for patience evaluations (default 3), keeping its best weights.
A stopped run (Ctrl+C) keeps its checkpoint and leaves the existing experts as they were;
--keep-partial writes the partly trained ones instead. An expert that is replaced is kept as its
previous version ("moa experts rollback NAME").
--nproc-per-node runs N data-parallel trainer processes through torchrun (auto: one per visible
GPU, one on CPU; the batch's rows per domain must divide by the process count); with --nnodes,
run the same command on every machine with its own --node-rank and one --rdzv-endpoint.
--print-launch prepares the run here and prints the exact command that runs it on another
machine (the workspace at the same path: a shared file system), and writes a Slurm script into
the run folder; the trainer writes the run's events.jsonl there, which the editor's dashboard
and "moa report" follow.
--resume continues the latest stopped, failed or interrupted run (or --run ID) from its last
checkpoint; with --finish-now it writes that checkpoint's experts without training further.
--json prints each trainer event as a JSON line. Exit code 3 if stopped early.`,
  complete: `usage: moa complete <file> --line L --col C [--max-tokens N] [--prompt-tokens N] [--temperature T] [--seed S] [--expert NAME] [--python PATH] [--json]
Completes <file> at line L, column C (both 1-based, as editors show them) with the expert that
label routing picks for the file's domain, and prints the completion. The prompt is the text
before the cursor, and for a base model with fill-in-the-middle tokens (Qwen2.5-Coder, StarCoder,
DeepSeek-Coder) also the text after it, cut to --prompt-tokens (default 512, special tokens included).
--expert NAME serves this one request from expert NAME alone, bypassing routing (to compare experts).`,
  experts: `usage: moa experts <list|attach NAME|detach NAME|pin NAME|unpin|rollback NAME|import DIR [NAME]|export NAME DIR [--format peft|gguf|ollama] [--type f32|f16|q8_0|q4_0]|inspect NAME> [--force] [--workspace DIR] [--json]
       moa experts merge NEW A B [C…] [--method linear|cat|svd|ties|dare_linear|dare_ties|magnitude_prune|…_svd] [--weights W,W…] [--density D] [--rank R] [--majority total|frequency] [--seed S] [--force]
list: every expert with its state (attached, detached, pinned, broken with the reason).
attach/detach/pin/unpin: workspace state in .moa/state.json; routing skips detached experts.
rollback: swaps an expert with the version that training or an import replaced (again to undo).
import: a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors), checked against the
base model, becomes an expert. export: writes an expert as a PEFT folder (default), a llama.cpp
LoRA adapter (--format gguf: NAME.gguf), or for Ollama (--format ollama: the base GGUF at --type,
the adapter and a Modelfile; it prints the ollama create line). inspect: per-layer
update norms, effective rank and the similarity to the other experts.
merge: a new expert NEW from A, B… with peft's add_weighted_adapter semantics (default linear,
weights 1 each; cat and svd take experts of different ranks, --rank sets svd's; ties, dare_* and
magnitude_prune need --density; dare draws its masks from --seed). For runtimes that take one
adapter, and as a baseline beside routing; needs the trainer's Python (torch).`,
  base: `usage: moa base [show] | moa base list | moa base set builtin:moa-tiny|hf:ORG/NAME[@REV]|FOLDER | moa base export-gguf DIR [--type f32|f16|q8_0|q4_0] [--force] [--workspace DIR] [--json]
show: the workspace's base model (architecture, parameters, weight size, fill-in-the-middle tokens)
and an estimate of the memory stage 1 needs for the current domains, LoRA rank, batch and sequence
length, on a GPU (bf16) and on the CPU (fp32), beside this machine's memory. list: the built-in
model and the supported ones in the Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub or
~/.cache/huggingface/hub; hf:ORG/NAME names them, never downloaded). set: checks the folder
is a model this reader takes, writes baseModel into .moa/moa.json (other keys kept), and names the
experts trained on another base, which are stale from then on. export-gguf: writes the base as one
GGUF file that llama.cpp and Ollama load: weights at --type (f32, f16 by default, q8_0 or q4_0), norms in
f32, the tokenizer; Llama, Mistral, SmolLM and Qwen2 folders (moa-tiny too) with a byte-level BPE.`,
  setup: `usage: moa setup [--cpu|--cuda] [--venv DIR] [--python PATH] [--json]
Creates the trainer's virtual environment from a Python 3.10+ (the newest on PATH, or --python),
outside any workspace ($MOA_HOME/trainer-env, else ~/.local/share/moa-studio/trainer-env; or
--venv DIR), installs trainer/requirements.txt with pip and its own configuration (pip.conf,
PIP_INDEX_URL: no index is named here), then runs moa doctor with it. nvidia-smi decides whether a
CUDA or a CPU build of torch is wanted (--cpu, --cuda to say so); if pip's index gave the other,
it says how to point pip at PyTorch's wheels. Run again to finish a failed or cancelled setup; it
reinstalls only when the requirements changed. moa and the editor use this environment when no
.venv, --python, moa.pythonPath or MOA_PYTHON chooses another.`,
  serve: `usage: moa serve [--port 8731] [--host 127.0.0.1] [--api-key KEY] [--python PATH] [--workspace DIR]
Serves the workspace's experts with the conventions OpenAI clients and editors speak:
GET /v1/models (moa: routed; base; one per attached expert) and POST /v1/completions (prompt,
suffix for fill-in-the-middle bases, max_tokens, temperature, top_p, stop, seed, stream as
server-sent events). model "moa" routes: by the request's "file" (workspace-relative) or
"language" field when given, else the learned router reads the prompt; model "<expert>" pins
one. Each response names who served in an extra "moa" field. Chat completions need a base with a
chat template (400 otherwise). Loopback only unless --host is given, and then --api-key is
required (bearer). One generation at a time, 16 more queued (429 past that), 1 MiB bodies,
120 s per request; a client that disconnects cancels its request; SIGTERM finishes the requests
in flight, then exits. --port 0 picks a free port (printed).`,
  eval: `usage: moa eval [--windows N] [--completions [--positions N] [--seed S]] [--workspace DIR] [--json]
On each domain's held-out shard (N evenly spaced windows, default 16): the loss of the base model,
of every expert (the domain × expert matrix), of the mixed baseline when trained, and of MoA with
label routing, with the learned router's figures from its training run; then fenced blocks of
each code domain inside Markdown (routing at the cursor: loss after the cursor, and how often the
block's own expert served it). --completions: at N sampled positions of each domain's held-out
files (default 24, half line starts, half mid-line, seed S), completes to the end of the line
under the base model, labels (each domain's expert), the mixed baseline, the learned router and
auto routing: exact match, edit similarity, accepted characters, latency p50/p95. Writes the
report to .moa/eval.json and beside the latest run.`,
  route: `usage: moa route <file> [--line L [--col C]] [--workspace DIR] [--json]
Prints the routing mode, the expert(s) chosen with their weights, and why: for a completion at
line L, column C (1-based; the end of the line by default), else at the end of the file. In the
learned and auto modes the cursor's context counts: inside a fenced block of a README, or a SQL
string in code, the route is the block's.`,
  report: `usage: moa report [--run ID] [--out FILE] [--workspace DIR] [--json]
Writes one self-contained HTML file (inline CSS and SVG, no scripts, nothing loaded from
elsewhere) to .moa/report.html, or to FILE: the loss curves of each expert per stage (training
and held-out), the moa eval table, the domain × expert held-out loss heatmap, the router's
accuracy and confusion per domain, and the dataset statistics. The run is ID, else the latest
run that trained. Parts not measured yet are marked "not available" with the command to run.
Prints the file's path (--json: the path and which parts were available).`,
  demo: `usage: moa demo [--steps N] [--router-steps N] [--workspace DIR] [--python PATH]
Builds a demo workspace in a new temporary folder (or in DIR, which must be new or empty; your
own files are never touched) from text on this machine after "npm ci": Python standard-library
modules, TypeScript declaration files, JavaScript sources and README files from node_modules, a
fixed selection of each. Then runs init, data, train (experts, router and the mixed baseline;
--steps, default 200 or $MOA_DEMO_STEPS, and --router-steps, default 100), experts list, eval,
routes one sample per domain with the learned router, completes one prompt under each expert
(complete --expert) and writes the HTML report (moa report). Needs a MoA Studio checkout.`,
  doctor: `usage: moa doctor [--python PATH] [--json]
Runs the trainer's environment check: Python, torch, device, GPU.`,
};
