// Benchmarks for src/core (issue: core): byte-level tokenizing + sharding throughput, and listing
// 100 experts. Run: npm run bench:core. Prints figures; writes nothing into the repository.
import { mkdirSync, writeFileSync, rmSync, mkdtempSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDatasets } from '../../src/core/data/shards';
import { validateConfig } from '../../src/core/config/validate';
import { workspaceLayout } from '../../src/core/paths';
import { ByteTokenizer } from '../../src/core/tokenizer/bytes';
import { listExperts } from '../../src/core/adapters/store';
import { writeSafetensorsF32 } from '../../src/core/adapters/safetensors';
import { figure, quick } from './figures';
import { median } from './stats';

function time(fn: () => void, runs: number): number {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return median(out);
}

const root = mkdtempSync(join(tmpdir(), 'moa-bench-'));
try {
  // 2,000 source files of ~10 KiB (20 MB) in two domains (200 with --quick).
  const line = 'def handler(request, context):  # serve one request and return the response body\n';
  const body = line.repeat(Math.ceil(10240 / line.length));
  let bytes = 0;
  for (let i = 0; i < (quick ? 200 : 2000); i++) {
    const dir = join(root, i % 2 ? 'src' : 'docs', `d${i % 40}`);
    mkdirSync(dir, { recursive: true });
    // Each file its own text: byte-identical copies are left out of the datasets (deduplicated).
    const text = `# file ${i}\n${body}`;
    writeFileSync(join(dir, `f${i}.${i % 2 ? 'py' : 'md'}`), text);
    bytes += text.length;
  }
  const layout = workspaceLayout(root);
  const config = validateConfig({ domains: [{ name: 'python', include: ['**/*.py'] }, { name: 'docs', include: ['**/*.md'] }] }).config!;
  const tok = new ByteTokenizer();
  buildDatasets(layout, config, tok); // warm the page cache
  const ms = time(() => buildDatasets(layout, config, tok), 3);
  const mbs = bytes / 1e6 / (ms / 1000);
  console.log(`tokenize + shard: ${(bytes / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms = ${mbs.toFixed(1)} MB/s (target ≥ 20 MB/s)`);
  figure({ bench: 'core', figure: `datasets: tokenize + shard ${(bytes / 1e6).toFixed(0)} MB, byte tokenizer`, ours: mbs, unit: 'MB/s', target: '≥ 20 MB/s', met: mbs >= 20 });

  const expertsDir = join(root, '.moa', 'experts');
  const tensors = new Map([['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', { shape: [8, 192], data: new Float32Array(8 * 192) }]]);
  writeSafetensorsF32(join(root, 'one.safetensors'), tensors);
  for (let i = 0; i < 100; i++) {
    const dir = join(expertsDir, `expert-${i}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj'] }));
    writeFileSync(join(dir, 'expert.json'), JSON.stringify({ v: 1, domain: `expert-${i}`, train_loss: 1.5 }));
    copyFileSync(join(root, 'one.safetensors'), join(dir, 'adapter_model.safetensors'));
  }
  listExperts(expertsDir);
  const listMs = time(() => listExperts(expertsDir), 20);
  console.log(`list 100 experts: ${listMs.toFixed(2)} ms median of 20 (target < 50 ms)`);
  figure({ bench: 'core', figure: 'list 100 experts (median of 20)', ours: listMs, unit: 'ms', target: '< 50 ms', met: listMs < 50 });
} finally {
  rmSync(root, { recursive: true, force: true });
}
