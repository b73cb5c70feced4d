import { join, resolve } from 'node:path';
import { inspectExpert } from '../../core/adapters/inspection';
import { exportExpert, importPeftAdapter } from '../../core/adapters/peft';
import { exportExpertAsGguf, exportForOllama } from '../../core/gguf/export';
import { ggufType } from './base';
import { MERGE_METHODS, mergeExperts, type MergeMethod } from '../../core/adapters/merge';
import { setAttached } from '../../core/adapters/state';
import { expertCatalog } from '../../core/adapters/catalog';
import { pinExpert, unpinExpert } from '../../core/routing/pin';
import { usableExperts } from '../../core/adapters/store';
import { loadConfig } from '../../core/config/load';
import { configuredBase } from '../../core/models/base';
import { workspaceLayout } from '../../core/paths';
import { MoaError } from '../../core/util/errors';
import { swapWithPrevious } from '../../core/util/atomic';
import { SAFE_NAME } from '../../core/names';
import { EXIT, UsageError, intOption, numberOption, product, print, pythonOf, workspaceOf } from '../args';
import type { Values } from '../args';

function baseOf(layout: ReturnType<typeof workspaceLayout>) {
  const { config } = loadConfig(layout.configFile);
  return { config, base: configuredBase(config.baseModel, product, layout.root) };
}

export async function cmdExperts(values: Values, positionals: string[]): Promise<number> {
  const [sub = 'list', arg, arg2] = positionals;
  const layout = workspaceOf(values);
  const need = (what: string) => {
    if (!arg) throw new UsageError(`moa experts ${sub} needs ${what}`);
    return arg;
  };
  const known = (name: string) => {
    if (!usableExperts(layout.expertsDir).some((e) => e.name === name)) throw new MoaError(`${join(layout.expertsDir, name)}: no usable expert "${name}"`, 'See "moa experts list".');
    return name;
  };
  switch (sub) {
    case 'list': {
      let baseModel: string | undefined;
      try {
        baseModel = loadConfig(layout.configFile).config.baseModel;
      } catch {
        baseModel = undefined; // no readable config: freshness by data alone
      }
      const { experts, problem } = expertCatalog(layout, baseModel);
      if (problem && !values.json) process.stderr.write(`warning: ${problem}\n`);
      const loss = (x: unknown) => (typeof x === 'number' ? x.toFixed(3) : '—');
      const lines = experts.map((e) =>
        e.status === 'ok'
          ? `${e.name.padEnd(14)} ${e.state.padEnd(9)} ${e.freshness.padEnd(7)} ${String(e.r).padStart(4)} ${String(e.alpha).padStart(6)}  ${loss(e.meta.val_loss).padStart(8)} ${loss(e.meta.train_loss).padStart(8)}  ${e.targetModules?.join(',')}`
          : `${e.name.padEnd(14)} broken    ${e.reason}`,
      );
      const header = `${'expert'.padEnd(14)} ${'state'.padEnd(9)} ${'data'.padEnd(7)} ${'rank'.padStart(4)} ${'alpha'.padStart(6)}  ${'held-out'.padStart(8)} ${'train'.padStart(8)}  targets`;
      const legend = 'loss in nats/token: held-out = on the domain\'s validation files at the end of training; train = mean of the last 10 steps';
      print(values, lines.length ? [header, ...lines, legend].join('\n') : 'no experts yet: run "moa train"', experts);
      return EXIT.ok;
    }
    case 'attach':
    case 'detach': {
      const state = setAttached(layout, known(need('an expert name')), sub === 'attach');
      print(values, `${arg} ${sub}ed`, state);
      return EXIT.ok;
    }
    case 'pin': {
      const { state, mode } = pinExpert(layout, known(need('an expert name')));
      print(values, `${arg} pinned: it serves every file (routing.mode is "${mode}"; "moa experts unpin" goes back to labels)`, state);
      return EXIT.ok;
    }
    case 'unpin':
      const { state, mode } = unpinExpert(layout);
      print(values, `nothing pinned (routing.mode is "${mode}")`, state);
      return EXIT.ok;
    case 'rollback': {
      const name = need('an expert name');
      if (!SAFE_NAME.test(name)) throw new MoaError(`"${name}" is not an expert name`);
      const dir = join(layout.expertsDir, name);
      if (!swapWithPrevious(dir)) throw new MoaError(`${dir}: no previous version of "${name}" is kept`, 'A previous version is kept when training or an import replaces an expert.');
      print(values, `${name}: back to its previous version (run it again to undo)`, { expert: dir });
      return EXIT.ok;
    }
    case 'import': {
      const { dir, warnings } = importPeftAdapter(resolve(need('a PEFT adapter folder')), layout.expertsDir, baseOf(layout).base, arg2, values.force);
      warnings.forEach((w) => process.stderr.write(`warning: ${w}\n`));
      print(values, `imported ${arg} as ${dir}`, { expert: dir, warnings });
      return EXIT.ok;
    }
    case 'export': {
      const name = known(need('an expert name'));
      if (!arg2) throw new UsageError('moa experts export needs a destination folder');
      const format = values.format ?? 'peft';
      const dir = join(layout.expertsDir, name);
      if (format === 'peft') {
        const files = exportExpert(dir, resolve(arg2), values.force);
        print(values, files.map((f) => `wrote ${f}`).join('\n'), { files });
      } else if (format === 'gguf') {
        const file = exportExpertAsGguf(dir, name, baseOf(layout).base, resolve(arg2), values.force);
        print(values, `wrote ${file} (a llama.cpp LoRA adapter; the base: moa base export-gguf DIR)`, { files: [file] });
      } else if (format === 'ollama') {
        const { files, create } = exportForOllama(dir, name, baseOf(layout).base, resolve(arg2), ggufType(values), values.force);
        print(values, `${files.map((f) => `wrote ${f}`).join('\n')}\nthen: ${create}\n(Ollama takes one adapter per model: routing among experts stays in MoA Studio)`, { files, create });
      } else throw new UsageError(`--format must be peft, gguf or ollama; got "${format}"`);
      return EXIT.ok;
    }
    case 'merge': {
      const [, name, ...sources] = positionals;
      if (!name || sources.length < 2) throw new UsageError('moa experts merge needs a new name and at least two experts: moa experts merge NEW A B [C…]');
      const method = values.method ?? 'linear';
      if (!(MERGE_METHODS as readonly string[]).includes(method)) throw new UsageError(`--method must be one of ${MERGE_METHODS.join(', ')}; got "${method}"`);
      if (values.majority !== undefined && values.majority !== 'total' && values.majority !== 'frequency') throw new UsageError(`--majority must be total or frequency; got "${values.majority}"`);
      const weights = values.weights?.split(',').map((w) => {
        const n = Number(w.trim());
        if (w.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--weights takes comma-separated numbers; got "${values.weights}"`);
        return n;
      });
      const dir = await mergeExperts(layout, product, baseOf(layout).base, pythonOf(values), {
        name, experts: sources, method: method as MergeMethod, weights, density: numberOption(values, 'density'),
        svdRank: intOption(values, 'rank', undefined, 1), majority: values.majority as 'total' | 'frequency' | undefined,
        seed: intOption(values, 'seed'), force: values.force,
      });
      print(values, `merged ${sources.join(' + ')} (${method}) into ${dir}; it is attached: routing can use it, or pin it with "moa experts pin ${name}"`, { expert: dir, method, experts: sources });
      return EXIT.ok;
    }
    case 'inspect': {
      const r = inspectExpert(layout, product, baseOf(layout).config, known(need('an expert name')));
      const lines = [`expert ${r.expert}: r=${r.r} alpha=${r.alpha} ${r.parameters} parameters, ${r.sizeBytes} bytes`, 'layer  module   ‖ΔW‖     eff. rank'];
      for (const st of r.stats) lines.push(`${String(st.layer).padStart(5)}  ${st.module.padEnd(7)} ${st.norm.toFixed(4).padStart(7)}  ${st.effectiveRank.toFixed(2).padStart(8)}`);
      if (r.similarity.experts.length > 1) {
        const w = Math.max(7, ...r.similarity.experts.map((n) => n.length + 1));
        lines.push('cosine similarity of updates:', `  ${''.padEnd(14)} ${r.similarity.experts.map((n) => n.padStart(w)).join('')}`);
        r.similarity.experts.forEach((n, i) => lines.push(`  ${n.padEnd(14)} ${r.similarity.matrix[i]!.map((v) => v.toFixed(2).padStart(w)).join('')}`));
      }
      print(values, lines.join('\n'), r);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown "moa experts ${sub}"`);
  }
}
