import { join } from 'node:path';

/** Where MoA keeps its files inside a workspace (DESIGN.md, "On disk, per workspace"). */
export interface WorkspaceLayout {
  root: string;
  moaDir: string;
  configFile: string;
  expertsDir: string;
  routerDir: string;
  baselinesDir: string;
  runsDir: string;
  cacheDir: string;
  dataDir: string;
  onnxDir: string;
}

export function workspaceLayout(root: string): WorkspaceLayout {
  const moaDir = join(root, '.moa');
  const cacheDir = join(moaDir, 'cache');
  return {
    root,
    moaDir,
    configFile: join(moaDir, 'moa.json'),
    expertsDir: join(moaDir, 'experts'),
    routerDir: join(moaDir, 'router'),
    baselinesDir: join(moaDir, 'baselines'),
    runsDir: join(moaDir, 'runs'),
    cacheDir,
    dataDir: join(cacheDir, 'data'),
    onnxDir: join(cacheDir, 'onnx'),
  };
}

/** Where the product's own files are: the extension folder or the npm package root. */
export interface ProductLayout {
  root: string;
  trainerDir: string;
  modelsDir: string;
}

export function productLayout(root: string): ProductLayout {
  return { root, trainerDir: join(root, 'trainer'), modelsDir: join(root, 'models') };
}
