"""meow.invert"""
