//! Named parameters with a trainable mark: what optimizers, checkpoints and adapters see.

use candle_core::{DType, Tensor, Var};

use crate::ml::error::Result;

/// Parameters in canonical order. Frozen ones get no gradient buffer and no optimizer
/// state: training code asks for [`Params::trainable`], never for every variable, and
/// models compute with [`Params::tensor`], which for a frozen parameter is a detached view
/// of the same storage, so backprop neither walks into it nor asks a kernel for its
/// gradient (the fused kernels skip the weight gradient of an untracked weight).
#[derive(Debug, Default)]
pub struct Params {
    names: Vec<String>,
    vars: Vec<Var>,
    trainable: Vec<bool>,
    /// What the forward pass reads: the variable itself, or a detached view when frozen
    /// (cast to the compute dtype once, by [`Params::set_compute`]).
    views: Vec<Tensor>,
    /// The dtype models compute in when it is not the variables' (bf16 over f32 masters).
    compute: Option<DType>,
}

fn view(var: &Var, trainable: bool) -> Tensor {
    if trainable {
        var.as_tensor().clone()
    } else {
        var.as_tensor().detach()
    }
}

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Appends one parameter.
    pub fn push(&mut self, name: impl Into<String>, var: Var, trainable: bool) {
        self.names.push(name.into());
        self.views.push(view(&var, trainable));
        self.vars.push(var);
        self.trainable.push(trainable);
    }

    /// Drops every parameter from index `len` on (an adapter's, appended after the base).
    pub fn truncate(&mut self, len: usize) {
        self.names.truncate(len);
        self.vars.truncate(len);
        self.trainable.truncate(len);
        self.views.truncate(len);
    }

    /// The tensor a model computes with for parameter `i` (see the type's comment), in
    /// the compute dtype: a trainable f32 master is cast inside the graph on every call, so
    /// its gradient flows back to the f32 variable.
    ///
    /// # Panics
    /// When `i` is out of range: indices come from the model's own bookkeeping.
    pub fn tensor(&self, i: usize) -> Result<Tensor> {
        let v = &self.views[i];
        match self.compute {
            Some(c) if v.dtype() != c => Ok(v.to_dtype(c)?),
            _ => Ok(v.clone()),
        }
    }

    /// Computes in `dtype` from now on (`None`: the variables' own dtype). Frozen
    /// parameters are cast once here; variables keep their dtype (f32 masters).
    pub fn set_compute(&mut self, dtype: Option<DType>) -> Result<()> {
        self.compute = dtype;
        for i in 0..self.vars.len() {
            self.views[i] = view(&self.vars[i], self.trainable[i]);
            if let (Some(c), false) = (dtype, self.trainable[i]) {
                self.views[i] = self.views[i].to_dtype(c)?;
            }
        }
        Ok(())
    }

    /// The compute dtype set by [`Params::set_compute`], if any.
    pub fn compute(&self) -> Option<DType> {
        self.compute
    }

    /// Moves every variable to `rt.device` (names and marks kept) and computes in
    /// `rt.dtype` from now on (`None` for f32: the variables' own dtype).
    pub fn place(&mut self, rt: &crate::ml::runtime::Runtime) -> Result<()> {
        for v in &mut self.vars {
            if !v.as_tensor().device().same_device(&rt.device) {
                *v = Var::from_tensor(&v.as_tensor().to_device(&rt.device)?)?;
            }
        }
        self.set_compute((rt.dtype != DType::F32).then_some(rt.dtype))
    }

    /// Marks every parameter frozen.
    pub fn freeze_all(&mut self) {
        for i in 0..self.vars.len() {
            self.set_trainable(i, false);
        }
    }

    /// The index of the parameter named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
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
            self.views[i] = view(&self.vars[i], trainable);
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
        let views = vars
            .iter()
            .zip(&self.trainable)
            .map(|(v, &t)| view(v, t))
            .collect();
        let mut p = Params {
            names: self.names.clone(),
            vars,
            trainable: self.trainable.clone(),
            views,
            compute: None,
        };
        p.set_compute(self.compute)?;
        Ok(p)
    }
}
