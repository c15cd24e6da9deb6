"""A convolutional VAE on MNIST: latent interpolation, latent map, reconstructions (model.py is the lesson)."""
