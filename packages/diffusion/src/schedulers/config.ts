// The scheduler fields of a diffusers `scheduler/scheduler_config.json` that
// our samplers read (names as diffusers writes them). Fields a file leaves out
// take the chosen scheduler class's own default, as diffusers'
// `Scheduler.from_config` does; e.g. SD 1.5 ships a PNDM config without
// `timestep_spacing`, so Euler gets "linspace" and DDIM "leading".
// Source: diffusers src/diffusers/schedulers/*.py __init__ signatures.

export type BetaSchedule = 'linear' | 'scaled_linear';
export type PredictionType = 'epsilon' | 'v_prediction';
export type TimestepSpacing = 'linspace' | 'leading' | 'trailing';

export interface SchedulerConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  predictionType: PredictionType;
  /** undefined: the scheduler class's default spacing. */
  timestepSpacing: TimestepSpacing | undefined;
  stepsOffset: number;
  /** undefined: the class default (true for DDIM and LCM). */
  setAlphaToOne: boolean | undefined;
  useKarrasSigmas: boolean;
  /** undefined: the class default (DDIM true, LCM false). */
  clipSample: boolean | undefined;
  clipSampleRange: number;
  /** LCM: the distillation schedule's length and the boundary-condition time scale. */
  originalInferenceSteps: number;
  timestepScaling: number;
}

export class SchedulerConfigError extends Error {
  override name = 'SchedulerConfigError';
}

/** diffusers' DDPM-family defaults (num_train_timesteps 1000, linear 1e-4 … 0.02, epsilon). */
export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = {
  numTrainTimesteps: 1000,
  betaStart: 0.0001,
  betaEnd: 0.02,
  betaSchedule: 'linear',
  predictionType: 'epsilon',
  timestepSpacing: undefined,
  stepsOffset: 0,
  setAlphaToOne: undefined,
  useKarrasSigmas: false,
  clipSample: undefined,
  clipSampleRange: 1,
  originalInferenceSteps: 50,
  timestepScaling: 10,
};

/** Reads scheduler_config.json's parsed content; unknown keys are ignored, unsupported values refused by name. */
export function parseSchedulerConfig(json: unknown): SchedulerConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new SchedulerConfigError('scheduler_config.json: expected a JSON object');
  const raw = json as Record<string, unknown>;
  const c = { ...DEFAULT_SCHEDULER_CONFIG };
  const num = (key: string, fallback: number, integer = false): number => {
    const v = raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
      throw new SchedulerConfigError(`scheduler_config.json: ${key} must be a${integer ? 'n integer' : ' number'}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const bool = (key: string): boolean | undefined => {
    const v = raw[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw new SchedulerConfigError(`scheduler_config.json: ${key} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[]): T | undefined => {
    const v = raw[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      throw new SchedulerConfigError(`scheduler_config.json: ${key} ${JSON.stringify(v)} is not supported; use one of ${allowed.join(', ')}`);
    }
    return v as T;
  };
  if (raw.trained_betas !== undefined && raw.trained_betas !== null) throw new SchedulerConfigError('scheduler_config.json: trained_betas is not supported');
  c.numTrainTimesteps = num('num_train_timesteps', c.numTrainTimesteps, true);
  if (c.numTrainTimesteps < 2) throw new SchedulerConfigError('scheduler_config.json: num_train_timesteps must be at least 2');
  c.betaStart = num('beta_start', c.betaStart);
  c.betaEnd = num('beta_end', c.betaEnd);
  c.betaSchedule = oneOf('beta_schedule', ['linear', 'scaled_linear'] as const) ?? c.betaSchedule;
  c.predictionType = oneOf('prediction_type', ['epsilon', 'v_prediction'] as const) ?? c.predictionType;
  c.timestepSpacing = oneOf('timestep_spacing', ['linspace', 'leading', 'trailing'] as const);
  c.stepsOffset = num('steps_offset', c.stepsOffset, true);
  c.setAlphaToOne = bool('set_alpha_to_one');
  c.useKarrasSigmas = bool('use_karras_sigmas') ?? false;
  c.clipSample = bool('clip_sample');
  c.clipSampleRange = num('clip_sample_range', c.clipSampleRange);
  c.originalInferenceSteps = num('original_inference_steps', c.originalInferenceSteps, true);
  c.timestepScaling = num('timestep_scaling', c.timestepScaling);
  return c;
}
