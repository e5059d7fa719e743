"""Face analysis: landmarks (MediaPipe face mesh), head pose, masks and the mesh topology they share."""
