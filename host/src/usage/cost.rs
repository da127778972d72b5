//! What a request cost: tokens times the prices in effect for its model.

use provider_sdk::{Manifest, Pricing, Usage};

use crate::config::PriceOverrides;

/// The prices for `provider/model`: the config's override, else the plugin manifest's.
pub fn prices<'a>(
    overrides: &'a PriceOverrides,
    provider: &str,
    model: &str,
    manifest: Option<&'a Manifest>,
) -> Option<&'a Pricing> {
    overrides.get(&format!("{provider}/{model}")).or_else(|| {
        manifest?
            .models
            .iter()
            .find(|m| m.id == model)?
            .pricing
            .as_ref()
    })
}

/// US dollars for `usage` at `pricing`. Cached input tokens are charged at the cached
/// price (the input price when the model has none); the rest of the prompt at the
/// input price, completion tokens (reasoning included) at the output price.
pub fn cost(pricing: &Pricing, usage: &Usage) -> f64 {
    let cached = usage.cached_prompt_tokens.min(usage.prompt_tokens);
    let fresh = usage.prompt_tokens - cached;
    let cached_price = pricing
        .cached_input_per_mtok
        .unwrap_or(pricing.input_per_mtok);
    (fresh as f64 * pricing.input_per_mtok
        + cached as f64 * cached_price
        + usage.completion_tokens as f64 * pricing.output_per_mtok)
        / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use provider_sdk::ModelInfo;

    #[test]
    fn cached_tokens_are_charged_at_the_cached_price() {
        let pricing = Pricing {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
            cached_input_per_mtok: Some(1.25),
        };
        let usage = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 500,
            cached_prompt_tokens: 400,
            ..Usage::default()
        };
        // 600 * 2.5 + 400 * 1.25 + 500 * 10 = 1500 + 500 + 5000 = 7000 per million.
        assert!((cost(&pricing, &usage) - 0.007).abs() < 1e-12);
        let no_cache_price = Pricing {
            cached_input_per_mtok: None,
            ..pricing
        };
        assert!((cost(&no_cache_price, &usage) - 0.0075).abs() < 1e-12);
    }

    #[test]
    fn config_prices_override_the_manifest() {
        let manifest = Manifest {
            models: vec![ModelInfo {
                id: "m".into(),
                pricing: Some(Pricing {
                    input_per_mtok: 1.0,
                    output_per_mtok: 2.0,
                    cached_input_per_mtok: None,
                }),
                ..ModelInfo::default()
            }],
            ..Manifest::default()
        };
        let mut overrides = PriceOverrides::new();
        assert_eq!(
            prices(&overrides, "p", "m", Some(&manifest))
                .unwrap()
                .input_per_mtok,
            1.0
        );
        overrides.insert(
            "p/m".into(),
            Pricing {
                input_per_mtok: 9.0,
                output_per_mtok: 9.0,
                cached_input_per_mtok: None,
            },
        );
        assert_eq!(
            prices(&overrides, "p", "m", Some(&manifest))
                .unwrap()
                .input_per_mtok,
            9.0
        );
        assert!(prices(&overrides, "p", "unknown", Some(&manifest)).is_none());
    }
}
