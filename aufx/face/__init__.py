"""Face analysis: landmarks (MediaPipe face mesh), head pose, the aligned crop, the mesh topology and its geometry.

The bottom layer: it imports nothing from aufx.model or aufx.engines, which build on it.
"""
