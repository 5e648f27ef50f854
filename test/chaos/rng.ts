// The chaos harness draws from the simulator's seeded generator.
export { Rng } from '../sim/rng.ts';
