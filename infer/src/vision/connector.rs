//! Idefics3's connector: the pixel shuffle folds each `scale`×`scale` block of patch vectors
//! into one vector (`scale`² times wider, `scale`² times fewer), then one linear map without
//! bias takes it into the text model's embedding space. So SmolVLM's 32×32 patches become 64
//! image tokens. The reshapes are transformers' own, in its order: another order would pair
//! the same numbers with other weights.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::dense::Dense;
use crate::weights::StoredWeights;

type Result<T> = candle_core::Result<T>;

pub struct Connector {
    scale: usize,
    projection: Dense,
}

impl Connector {
    /// From `model.connector` in a checkpoint.
    pub fn load(
        vision_hidden: usize,
        text_hidden: usize,
        scale: usize,
        vb: VarBuilder,
        stored: &StoredWeights,
    ) -> Result<Connector> {
        let projection = stored.dense(
            &vb,
            "modality_projection.proj",
            vision_hidden * scale * scale,
            text_hidden,
            false,
        )?;
        Ok(Connector { scale, projection })
    }

    /// [batch, patches, vision hidden] → [batch, patches / scale², text hidden].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.projection.forward(&self.pixel_shuffle(x)?)
    }

    fn pixel_shuffle(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, seq, d) = x.dims3()?;
        let s = self.scale;
        let side = (seq as f64).sqrt() as usize;
        x.reshape((batch, side, side / s, d * s))?
            .permute((0, 2, 1, 3))?
            .contiguous()?
            .reshape((batch, side / s, side / s, d * s * s))?
            .permute((0, 2, 1, 3))?
            .contiguous()?
            .reshape((batch, seq / (s * s), d * s * s))
    }
}
