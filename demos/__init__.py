"""One module per Gradio tab; each exposes `build()` that fills the current `gr.Tab`."""
