"""What explains a model's decisions: Grad-CAM (torch lives here), ONNX-to-torch conversion and t-SNE maps."""
