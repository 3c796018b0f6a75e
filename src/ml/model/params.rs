//! Named parameters with a trainable mark: what optimizers, checkpoints and adapters see.

use candle_core::{Tensor, Var};

use crate::ml::error::Result;

/// Parameters in canonical order. Frozen ones get no gradient buffer and no optimizer
/// state: training code asks for [`Params::trainable`], never for every variable.
#[derive(Debug, Default)]
pub struct Params {
    names: Vec<String>,
    vars: Vec<Var>,
    trainable: Vec<bool>,
}

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Appends one parameter.
    pub fn push(&mut self, name: impl Into<String>, var: Var, trainable: bool) {
        self.names.push(name.into());
        self.vars.push(var);
        self.trainable.push(trainable);
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Every name, canonical order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every variable, in the order of [`Params::names`].
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    pub fn is_trainable(&self, i: usize) -> bool {
        self.trainable.get(i).copied().unwrap_or(false)
    }

    /// Marks parameter `i` trainable or frozen.
    pub fn set_trainable(&mut self, i: usize, trainable: bool) {
        if let Some(t) = self.trainable.get_mut(i) {
            *t = trainable;
        }
    }

    /// Names and variables of the trainable parameters, canonical order.
    pub fn trainable(&self) -> (Vec<String>, Vec<Var>) {
        let mut names = Vec::new();
        let mut vars = Vec::new();
        for i in 0..self.vars.len() {
            if self.trainable[i] {
                names.push(self.names[i].clone());
                vars.push(self.vars[i].clone());
            }
        }
        (names, vars)
    }

    /// The variable named `name`.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.vars[i])
    }

    /// `(name, tensor)` pairs, canonical order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.names
            .iter()
            .cloned()
            .zip(self.vars.iter().map(|v| v.as_tensor().clone()))
            .collect()
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.vars.iter().map(|v| v.as_tensor().elem_count()).sum()
    }

    /// A copy with its own storage and the same marks.
    pub fn deep_clone(&self) -> Result<Params> {
        let vars = self
            .vars
            .iter()
            .map(|v| Var::from_tensor(&v.as_tensor().copy()?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Params {
            names: self.names.clone(),
            vars,
            trainable: self.trainable.clone(),
        })
    }
}
