"""meow.train"""
