//! The paper's safety-training and red-teaming algorithms: reward models, RL (PPO, RLOO),
//! the red-team search, adversarial training, and scratchpad handling for SFT.

pub mod adversarial;
pub mod redteam;
pub mod reward;
pub mod rl;
pub mod scratchpad;
