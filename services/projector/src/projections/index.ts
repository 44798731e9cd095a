import type { Projection } from '../projection.ts';
import { commitmentTypesProjection } from './commitment-types.ts';
import { commitmentsProjection } from './commitments.ts';
import { profilesProjection } from './profiles.ts';

/** Every projection, by the name its checkpoint row has. */
export const PROJECTIONS: readonly Projection[] = [
  profilesProjection,
  commitmentTypesProjection,
  commitmentsProjection,
];

export function projectionNamed(name: string): Projection | undefined {
  return PROJECTIONS.find((p) => p.name === name);
}
