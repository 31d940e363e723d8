"""Vehicle room (layer 1): this vehicle's kinematic model and camera models, shared by the
perception, planning and control cores and the simulator, plus the vehicle-description node."""
