"""Images: reading uploads, the model, AI Cut, hair, the editor, estimates, and the one pipeline."""
