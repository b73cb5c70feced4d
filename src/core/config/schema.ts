/** The shape of `.moa/moa.json` (version 1): the sections' types come from the table (table.ts). */
import type { ConfigSections } from './table';

export { ATTENTION_MODULES, DEFAULT_BASE_MODEL, ROUTING_MODES } from './table';

export type RoutingMode = ConfigSections['routing']['mode'];
/** The base's weights in the exported graph (MatMulNBits blocks for int8 / int4). */
export type WeightType = ConfigSections['inference']['weights'];

export interface DomainConfig {
  name: string;
  include: string[];
  exclude: string[];
  languages: string[];
}

export interface MoaConfig extends ConfigSections {
  version: 1;
  baseModel: string;
  domains: DomainConfig[];
}
